# vidcurate: `make demo` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
DEMO   ?= demo

.PHONY: setup browser demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check -e ".[test]"
	$(BIN)/python scripts/check_env.py
	rm -f $(VENV)/.installed-* && touch $@

# Debian's Chromium for the dashboard's browser test (a test tool's own browser download is not used).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null; \
	  else echo "chromium not installed and cannot install it (need root + apt): the browser test will be skipped"; fi; }

demo: setup
	rm -rf $(DEMO)
	$(BIN)/vidcurate sample-data $(DEMO)/input
	$(BIN)/vidcurate run $(DEMO)/input $(DEMO)/out
	$(BIN)/vidcurate dashboard $(DEMO)/out
	$(BIN)/vidcurate evaluate $(DEMO)/out --truth $(DEMO)/input/ground_truth.json
	# export: WebDataset shards (a small shard size, to show several) and an Open-Sora CSV; a rerun has nothing to do
	$(BIN)/vidcurate export $(DEMO)/out --format webdataset --shard-size 50000000 --quiet
	$(BIN)/vidcurate export $(DEMO)/out --format webdataset --shard-size 50000000 --quiet
	$(BIN)/vidcurate export $(DEMO)/out --format csv --quiet
	# training hand-off: a tiny causal video autoencoder (4x time, 8x8 space) on the curated clips, its held-out
	# report, video latents (C, T', H', W') of the curated clips, a tiny spatiotemporal DiT, mp4 samples
	$(BIN)/vidcurate train-ae --config training/configs/ae_demo.yaml --manifest $(DEMO)/out/curated --out $(DEMO)/out/training/ae
	$(BIN)/vidcurate eval-ae --checkpoint $(DEMO)/out/training/ae/checkpoint.pt --manifest $(DEMO)/out/clips --table clips \
	  --holdout-fraction 0.2 --fps 8 --frames 9 --size 64 --out $(DEMO)/out/training/ae/report.json
	$(BIN)/vidcurate encode --manifest $(DEMO)/out/curated --checkpoint $(DEMO)/out/training/ae/checkpoint.pt \
	  --out $(DEMO)/out/latents --fps 8 --frames 9 --size 64
	$(BIN)/vidcurate train-diffusion --latents $(DEMO)/out/latents --out $(DEMO)/out/training/dit --model tiny \
	  --steps 400 --batch-size 16 --no-progress
	$(BIN)/vidcurate sample --checkpoint $(DEMO)/out/training/dit/ckpt.pt --out $(DEMO)/out/training/samples --n 4 \
	  --steps 16 --autoencoder $(DEMO)/out/training/ae/checkpoint.pt --spectral-reference $(DEMO)/out/latents
	# the same DiT trainer and sampler on toy pixel videos with known structure (1-3 coloured shapes moving at 0 or
	# 1 px/frame): samples next to training clips (dit_toy/dit_toy_samples.{mp4,png}) and their motion, colour and
	# shape-count distances to held-out clips, beside an untrained model's and data vs data (dit_toy/dit_toy.json)
	$(BIN)/python -m bench.dit_toy_bench --out $(DEMO)/out/training/dit_toy --threads 1 --no-progress \
	  --patch 2 --temporal-patch 2 --steps 700 --samples 64 --sampler-steps 16 \
	  > $(DEMO)/out/training/dit_toy.log && tail -n 1 $(DEMO)/out/training/dit_toy.log
	# the curation experiment (small): curated vs a random same-size sample vs all clips, 3 seeds each, the same
	# model and budget, scored against a clean held-out set with 95% bootstrap intervals ("inconclusive" when they overlap).
	# First a positive control (--planted-fraction): 30% of 96 clean clips made black, "all" vs "curated" by our rules,
	# in a latent space that keeps the defect: it must print DETECTED, or the comparison below could never see anything
	$(BIN)/vidcurate heldout-data $(DEMO)/heldout --count 16
	$(BIN)/vidcurate encode --manifest $(DEMO)/heldout/clips.parquet --table clips --checkpoint $(DEMO)/out/training/ae/checkpoint.pt \
	  --out $(DEMO)/out/latents_reference --fps 8 --frames 9 --size 64
	$(BIN)/vidcurate encode --manifest $(DEMO)/out/clips --table clips --checkpoint $(DEMO)/out/training/ae/checkpoint.pt \
	  --out $(DEMO)/out/latents_all --fps 8 --frames 9 --size 64
	$(BIN)/vidcurate ablation-study --curated $(DEMO)/out/latents --all $(DEMO)/out/latents_all \
	  --reference $(DEMO)/out/latents_reference --autoencoder $(DEMO)/out/training/ae/checkpoint.pt \
	  --out $(DEMO)/out/training/ablation --seeds 0,1,2 --model tiny --steps 100 --batch-size 16 \
	  --n-samples 16 --sample-steps 8 --bootstrap 500 --no-progress --planted-fraction 0.3
	$(BIN)/python scripts/demo_tail.py $(DEMO)

test: setup browser
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: setup
	$(BIN)/python -m bench

clean:
	rm -rf $(DEMO) .pytest_cache build *.egg-info
