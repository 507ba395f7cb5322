#!/usr/bin/env bash
# Idempotent setup of everything the lab needs, then runs the given harness command.
#   bash harness/bootstrap.sh                 -> set up only
#   bash harness/bootstrap.sh run smoke       -> set up, then `harness run smoke`
#   bash harness/bootstrap.sh test [ARGS]     -> set up, lint, import contracts, then the test
#                                                suite (pytest ARGS)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
TOOLS="$ROOT/.tools"
AZCOPY_VERSION="10.32.2"
AZURITE_VERSION="3.37.0"
log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*" >&2; }

need_apt=()
dpkg -s libsecret-1-0 >/dev/null 2>&1 || need_apt+=(libsecret-1-0)
dpkg -s nginx-light >/dev/null 2>&1 || command -v nginx >/dev/null 2>&1 || need_apt+=(nginx-light)
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
if ((${#need_apt[@]})); then
  log "installing Debian packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

stamp="$VENV/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  log "creating the Python environment in .venv"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -e ".[dev]"
  touch "$stamp"
fi

npm_stamp="$TOOLS/npm/.installed-$AZCOPY_VERSION-$AZURITE_VERSION"
if [ ! -f "$npm_stamp" ]; then
  log "installing AzCopy $AZCOPY_VERSION and Azurite $AZURITE_VERSION from npm into .tools/npm"
  mkdir -p "$TOOLS/npm"
  npm install --no-audit --no-fund --loglevel=error --prefix "$TOOLS/npm" \
    "@azure-tools/azcopy-linux@$AZCOPY_VERSION" "azurite@$AZURITE_VERSION" >/dev/null
  touch "$npm_stamp"
fi
chmod +x "$TOOLS"/npm/node_modules/@azure-tools/azcopy-linux/dist/bin/azcopy* 2>/dev/null || true

case "${1:-}" in
  "") log "ready: $VENV/bin/harness --help" ;;
  test)
    shift
    # What only the tests need: a PostgreSQL server of their own (history), LibreOffice and
    # poppler (the deck and pilot renders), OpenSSH's sshd (the lab's hosts, harness lab up), and
    # xfsprogs with losetup (the 4.5 TiB blob on a reflinked XFS loop file, test_large_objects),
    # and fio (the bench's disk anchors; `harness bench` installs it itself on first use).
    need_test=()
    compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || need_test+=(postgresql)
    command -v soffice >/dev/null 2>&1 || need_test+=(libreoffice-impress)
    command -v pdftoppm >/dev/null 2>&1 || need_test+=(poppler-utils)
    dpkg -s openssh-server >/dev/null 2>&1 || need_test+=(openssh-server)
    command -v mkfs.xfs >/dev/null 2>&1 || need_test+=(xfsprogs)
    command -v losetup >/dev/null 2>&1 || need_test+=(mount)
    command -v fio >/dev/null 2>&1 || need_test+=(fio)
    if ((${#need_test[@]})); then
      log "installing Debian packages for the tests: ${need_test[*]}"
      SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
      $SUDO apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        "${need_test[@]}" >/dev/null
    fi
    log "lint: ruff check and ruff format --check"
    "$VENV/bin/ruff" check --quiet . && "$VENV/bin/ruff" format --check --quiet .
    log "import contracts: lint-imports ([tool.importlinter] in pyproject.toml)"
    "$VENV/bin/lint-imports" --no-cache --no-logo
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  *) exec "$VENV/bin/harness" "$@" ;;
esac
