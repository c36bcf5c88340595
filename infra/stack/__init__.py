"""The native dev stack on 127.0.0.1, installed on first use: Kafka, PostgreSQL, Redis, ClickHouse,
Weaviate, the embedded model server and stripe-mock (billing). `lifecycle` starts, stops and reports the
whole of it; each service's module is imported alone by what needs it at run time (the memory writer its
embedding model's files, the sinks their ClickHouse client), without the others' installers."""
