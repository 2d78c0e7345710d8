"""Code-data tools: tokenizer, fill-in-the-middle, syntax filter, packing, token shards, repository
evolution triples, dedup and decontamination. Every job runs on a local process pool or on Ray
(`iquest_core.data.engine`)."""
