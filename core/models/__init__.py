"""Local Hugging Face models: loading, device and dtype, chat templates, generation."""
