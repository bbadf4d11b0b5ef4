"Test-wide settings: no network, no stray caches."
import os, tempfile

# Tests never touch the network: Hugging Face libraries must use local files only.
for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"): os.environ[var] = "1"
os.environ.setdefault("HF_HOME", os.path.join(tempfile.gettempdir(), "gpt2_edu_test_hf_home"))
# tiktoken must not copy vocabulary files into a shared cache; our loaders pass files explicitly.
os.environ.setdefault("TIKTOKEN_CACHE_DIR", "")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
