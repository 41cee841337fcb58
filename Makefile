# Every target that runs project code depends on the virtual environment.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# make train DATA=simulated|movielens|<folder or files> [TRAIN_ARGS='--columns ...']
DATA ?= simulated
OUT ?= artifacts
TRAIN_ARGS ?=
# make score INPUT=<files, folders or globs> MODEL=<bundle folder> SCORES=<output path>
INPUT ?=
MODEL ?= artifacts/latest
SCORES ?= scores.parquet

.PHONY: install train score test lint package bench deploy deploy-zip clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[train,dev]'
	touch $(STAMP)

train: $(STAMP)
	$(PY) -m train fit --data '$(DATA)' --out '$(OUT)' $(TRAIN_ARGS)

score: $(STAMP)
	@test -n "$(INPUT)" || { echo "set INPUT, for example: make score INPUT=events.csv MODEL=artifacts/latest"; exit 2; }
	$(PY) -m infer score $(INPUT) --model '$(MODEL)' --out '$(SCORES)'

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check infer train tests bench infra
	$(VENV)/bin/mypy
	$(VENV)/bin/cfn-lint infra/template.yaml

package: $(STAMP)
	$(PY) -m infra.package --model '$(MODEL)' --out build/lambda.zip

bench: $(STAMP)
	$(PY) -m bench

# Container image (default): copy the bundle where infra/Dockerfile expects it,
# build the image with sam and deploy it.
deploy: $(STAMP)
	$(PY) -m infra.package --model '$(MODEL)' --bundle-only build/model
	cd infra && sam build && sam deploy --guided

# Zip package: deploy build/lambda.zip with the template that make package wrote.
deploy-zip: package
	sam deploy --guided --template-file build/template.json

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
