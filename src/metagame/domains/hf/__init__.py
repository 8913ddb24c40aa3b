"""Hugging Face loading shared by the language-model and encoder domains: names or local folders, safetensors only
(pickle checkpoints refused), GGUF files, offline hub resolution, ``trust_remote_code=False`` unless asked."""
