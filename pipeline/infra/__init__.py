"""The servers' clients and setup: Kafka producers/consumers and topics, Elasticsearch clients and index templates, Kibana objects, dead-letter records."""
