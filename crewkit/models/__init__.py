"""Role map -> LLM objects: providers, the embedded llama.cpp model, the metered wrapper."""
