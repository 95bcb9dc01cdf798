#!/usr/bin/env bash
# recmeta on a machine with an NVIDIA GPU, in one go, from the repository root:
#
#     OUT=/some/dir bash benchmarks/gpu_check.sh
#
# 1. env:   nvidia-smi, the Python, torch and CUDA versions, the libraries the tests use.
# 2. deps:  SQLAlchemy and alembic when missing, from the local wheels in .whl/ (with Mako,
#           MarkupSafe and, if the one there is older than alembic needs, typing_extensions)
#           into $SITE, never from the network; the repository goes on PYTHONPATH (recmeta
#           is not installed: recmeta.adapters and recmeta.migrations, which setuptools maps
#           from adapters/ and migrations/, are linked into recmeta/ for the run). Make the
#           wheel folder beforehand on a machine with a package index, for that machine's
#           Python (here 3.12): python3 -m pip download --no-deps --only-binary=:all:
#           --python-version 3.12 --platform manylinux2014_x86_64 -d .whl SQLAlchemy alembic
#           Mako MarkupSafe typing_extensions
# 3. tests: the test suite but its slow tests (which need the MovieLens files, a wheel
#           build or minutes), the GPU tests first; PostgreSQL tests skip themselves. Models
#           fitted with device="auto" run on the GPU here. -> $OUT/pytest.log
# 4. core:  benchmarks/core.py --device cuda: CPU and GPU side by side. -> $OUT/core.log
#
# Every step runs even when the one before failed; the last lines give each step's exit
# status (124: it ran past its timeout). Settings, by environment variable: PYTHON (python3),
# OUT (/tmp/gpu_check), SITE (/tmp/site), WHEELS (.whl), FORCE_WHEELS=1 (install the wheels
# even when the packages are there), TEST_TIMEOUT (200 s), CORE_TIMEOUT (150 s), CORE_ARGS.
set -o pipefail
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
PY=${PYTHON:-python3}
OUT=${OUT:-/tmp/gpu_check}
SITE=${SITE:-/tmp/site}
WHEELS=${WHEELS:-.whl}
TEST_TIMEOUT=${TEST_TIMEOUT:-200}
CORE_TIMEOUT=${CORE_TIMEOUT:-150}
CORE_ARGS=${CORE_ARGS:---device cuda --only adaptation,latency,training}
ROOT=$(pwd)
mkdir -p "$OUT"
unset RECMETA_PG_URL RECMETA_REQUIRE_PG  # no PostgreSQL here: those tests skip
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

SUMMARY=()
START=$SECONDS
record() {  # record NAME STATUS SECONDS
    SUMMARY+=("$(printf '%-6s exit %3s  %4s s' "$1" "$2" "$3")")
}
banner() { printf '\n===== %s  (%s s since start)\n' "$1" $((SECONDS - START)); }

# ---------------------------------------------------------------------------------- env
banner "env"
t0=$SECONDS
{
    nvidia-smi || echo "nvidia-smi: not found or failed (exit $?)"
    "$PY" - <<'EOF'
import importlib, os, platform, sys
from importlib.metadata import version
print("python", sys.version.split()[0], "at", sys.executable, platform.platform())
print("CPUs:", os.cpu_count(), "usable:", len(os.sched_getaffinity(0)),
      "OMP_NUM_THREADS:", os.environ.get("OMP_NUM_THREADS"))
import torch
print("torch", torch.__version__, "CUDA build", torch.version.cuda, "cudnn",
      torch.backends.cudnn.version(), "threads", torch.get_num_threads())
print("cuda available:", torch.cuda.is_available(), " devices:", torch.cuda.device_count())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("device 0:", p.name, f"{p.total_memory / 2**30:.1f} GiB", f"sm_{p.major}{p.minor}",
          "tf32 matmul:", torch.backends.cuda.matmul.allow_tf32)
for name, dist in (("numpy", "numpy"), ("pandas", "pandas"), ("sklearn", "scikit-learn"),
                   ("scipy", "scipy"), ("safetensors", "safetensors"), ("click", "click"),
                   ("tqdm", "tqdm"), ("joblib", "joblib"), ("pytest", "pytest"),
                   ("matplotlib", "matplotlib"), ("typing_extensions", "typing_extensions"),
                   ("sqlalchemy", "SQLAlchemy"), ("alembic", "alembic"), ("mako", "Mako")):
    try:
        importlib.import_module(name)
        print(f"  {name} {version(dist)}")
    except Exception as exc:
        print(f"  {name}: MISSING ({type(exc).__name__}: {exc})")
EOF
} 2>&1 | tee "$OUT/env.log"
record env $? $((SECONDS - t0))

# --------------------------------------------------------------------------------- deps
banner "deps"
t0=$SECONDS
status=0
if [ "${FORCE_WHEELS:-0}" = 1 ] || ! "$PY" -c "import sqlalchemy, alembic, mako" 2>/dev/null
then
    wheels=()
    for w in "$WHEELS"/*.whl; do
        case $(basename "$w") in
            typing_extensions-*)  # only when the one there is older than alembic needs
                "$PY" -c "from importlib.metadata import version as v
assert tuple(map(int, v('typing_extensions').split('.')[:2])) >= (4, 12)" 2>/dev/null \
                    && continue ;;
        esac
        [ -f "$w" ] && wheels+=("$w")
    done
    echo "installing into $SITE: ${wheels[*]##*/}"
    mkdir -p "$SITE"
    if ! "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target "$SITE" "${wheels[@]}"; then
        echo "pip failed or is missing: unpacking the wheels directly (they are plain zips)"
        "$PY" -c "import sys, zipfile; [zipfile.ZipFile(w).extractall(sys.argv[1]) for w in sys.argv[2:]]" \
            "$SITE" "${wheels[@]}"
    fi
    export PYTHONPATH="$SITE:$PYTHONPATH"
else
    echo "SQLAlchemy, alembic and Mako are there: nothing to install"
fi
"$PY" -c "import sqlalchemy, alembic, mako; print('sqlalchemy', sqlalchemy.__version__, 'alembic', alembic.__version__, 'mako', mako.__version__, 'from', sqlalchemy.__file__)" || status=$?

# recmeta.adapters and recmeta.migrations live in adapters/ and migrations/ (pyproject's
# package-dir); without an install, links put them where `import recmeta.adapters` looks
LINKED=()
if ! "$PY" -c "import recmeta.adapters, recmeta.migrations" 2>/dev/null; then
    for name in adapters migrations; do
        if [ ! -e "recmeta/$name" ]; then
            ln -s "../$name" "recmeta/$name" && LINKED+=("recmeta/$name")
        fi
    done
    echo "linked ${LINKED[*]} for this run (removed at the end)"
fi
trap 'for link in "${LINKED[@]}"; do [ -L "$link" ] && rm -f "$link"; done' EXIT
"$PY" -c "import recmeta, recmeta.adapters, recmeta.migrations; print('recmeta from', recmeta.__file__)" \
    || status=$?
record deps $status $((SECONDS - t0))

# -------------------------------------------------------------------------------- tests
banner "tests (timeout ${TEST_TIMEOUT} s)"
t0=$SECONDS
first=(tests/test_adaptation.py tests/test_estimator.py tests/test_persistence.py
       tests/test_fastpath.py)
rest=()
for f in tests/test_*.py; do
    case " ${first[*]} " in *" $f "*) ;; *) rest+=("$f") ;; esac
done
# the whole log goes to pytest.log; the screen is spared the list of PostgreSQL skips
timeout -k 10 "$TEST_TIMEOUT" "$PY" -m pytest -q -p no:cacheprovider -m "not slow" \
    --tb=short --durations=12 --maxfail=30 "${first[@]}" "${rest[@]}" recmeta \
    --ignore=recmeta/adapters --ignore=recmeta/migrations 2>&1 | tee "$OUT/pytest.log" \
    | grep -v "^SKIPPED .*RECMETA_PG_URL is not set"
record tests "${PIPESTATUS[0]}" $((SECONDS - t0))

# --------------------------------------------------------------------------------- core
banner "core: benchmarks/core.py $CORE_ARGS (timeout ${CORE_TIMEOUT} s)"
t0=$SECONDS
# shellcheck disable=SC2086  # CORE_ARGS is a list of words
timeout -k 10 "$CORE_TIMEOUT" "$PY" benchmarks/core.py $CORE_ARGS 2>&1 | tee "$OUT/core.log"
record core "${PIPESTATUS[0]}" $((SECONDS - t0))

banner "summary"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.used,memory.total \
    --format=csv,noheader
printf '%s\n' "${SUMMARY[@]}" | tee "$OUT/summary.txt"
