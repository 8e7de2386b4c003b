#!/usr/bin/env bash
# Installs what the end-to-end tests (and npm start without desktop VS Code) need on a Debian machine:
#   - Debian's chromium (driven by playwright-core), ripgrep, and the headers code-server's
#     native modules build against (libkrb5-dev for kerberos; a C++ toolchain and python for node-gyp);
#     the aarch64 cross compiler and qemu-user for the NEON kernel test (test/engine/neon.test.mjs);
#     apt-get needs root (or sudo without a password);
#   - code-server from npm into a project-local prefix: .cache/code-server (gitignored), or
#     $INTERNLM_CODE_SERVER_DIR (the tests and npm start read the same variable);
#   - playwright-core (a devDependency) when node_modules lacks it.
# Only the npm registry and Debian's apt are reachable, which shapes two steps below (see the
# ripgrep cache and node headers). Idempotent: every step is skipped when its result is present.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CODE_SERVER_VERSION="4.100.3"
PREFIX="$(realpath -m "${INTERNLM_CODE_SERVER_DIR:-$ROOT/.cache/code-server}")"
INSTALL_LOG="$PREFIX-install.log"
PACKAGE_DIR="$PREFIX/node_modules/code-server"
CODE_SERVER="$PREFIX/node_modules/.bin/code-server"
VSCODE_DIR="$PACKAGE_DIR/lib/vscode"
RG_BIN="$VSCODE_DIR/node_modules/@vscode/ripgrep/bin/rg"

log() { echo "[e2e-setup] $*"; }
die() { echo "e2e-setup: $*" >&2; exit 1; }

check_node() {
  command -v node >/dev/null && command -v npm >/dev/null || die "node and npm are needed (Node.js 20 or newer)"
  local major
  major="$(node -p 'process.versions.node.split(".")[0]')"
  [ "$major" -ge 20 ] || die "Node.js 20 or newer is needed (found $(node --version))"
}

install_debian_packages() {
  # g++-aarch64-linux-gnu + qemu-user: test/engine/neon.test.mjs cross-builds the NEON kernels and
  # checks them under emulation (it skips without them).
  local wanted=(chromium ripgrep libkrb5-dev python3 make g++ pkg-config g++-aarch64-linux-gnu qemu-user) missing=()
  for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  # python3/make/g++ may come from elsewhere (pyenv, a toolchain image): only the binaries matter.
  local still=()
  for pkg in "${missing[@]}"; do
    case "$pkg" in
      python3|make|g++|pkg-config) command -v "$pkg" >/dev/null || still+=("$pkg") ;;
      *) still+=("$pkg") ;;
    esac
  done
  if [ ${#still[@]} -eq 0 ]; then
    log "Debian packages present"
    return
  fi
  command -v apt-get >/dev/null || die "missing ${still[*]}, and this is not a Debian-like system (no apt-get): install them, then rerun"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null && sudo -n true 2>/dev/null ||
      die "missing Debian packages ${still[*]}; run this script as root, or: sudo apt-get install ${still[*]}"
    sudo=(sudo -n)
  fi
  log "apt-get install ${still[*]}"
  "${sudo[@]}" apt-get update -qq || die "apt-get update failed (is a Debian mirror reachable?)"
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${still[@]}" >/dev/null ||
    die "apt-get install ${still[*]} failed (see above)"
}

code_server_installed() {
  [ -x "$CODE_SERVER" ] && [ -x "$RG_BIN" ] &&
    [ "$(node -p "require('$PACKAGE_DIR/package.json').version" 2>/dev/null)" = "$CODE_SERVER_VERSION" ]
}

# @vscode/ripgrep's postinstall downloads a prebuilt rg from GitHub, which is unreachable. It first
# looks in "$TMPDIR/vscode-ripgrep-cache-<package version>/ripgrep-<rg release>-<target>.tar.gz"
# (lib/download.js), so we put Debian's rg there as that archive. The versions are those pinned by
# code-server 4.100.3's lib/vscode/npm-shrinkwrap.json (@vscode/ripgrep 1.15.11, whose
# lib/postinstall.js asks for release v13.0.0-10).
seed_ripgrep_cache() {
  local tmp="$1" target
  case "$(uname -m)" in
    x86_64) target="x86_64-unknown-linux-musl" ;;
    aarch64) target="aarch64-unknown-linux-musl" ;;
    *) die "unsupported architecture $(uname -m)" ;;
  esac
  local cache="$tmp/vscode-ripgrep-cache-1.15.11" stage="$tmp/rg-stage"
  mkdir -p "$cache" "$stage"
  cp "$(command -v rg)" "$stage/rg"
  tar -czf "$cache/ripgrep-v13.0.0-10-$target.tar.gz" -C "$stage" rg
}

install_code_server() {
  if code_server_installed; then
    log "code-server $CODE_SERVER_VERSION present in $PREFIX"
    return
  fi
  # A leftover of an interrupted install is started over, never patched up.
  local tmp="$PREFIX-tmp"
  rm -rf "$PREFIX" "$tmp"
  mkdir -p "$PREFIX" "$tmp"
  # A local install in its own folder, not `npm install -g --prefix`: npm passes --prefix on to
  # the nested installs of code-server's postinstall, which then install into the wrong tree.
  echo '{ "private": true }' > "$PREFIX/package.json"
  seed_ripgrep_cache "$tmp"
  log "npm install code-server@$CODE_SERVER_VERSION (builds native modules; takes a few minutes)"
  local nodedir=()
  # node-gyp would download node's headers from nodejs.org (unreachable); Debian's nodejs ships them.
  if [ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/node.h ]; then nodedir=(npm_config_nodedir=/usr); fi
  # code-server's postinstall refuses to run as root unless npm_config_unsafe_perm=true (npm >= 7
  # no longer knows --unsafe-perm, so the env var is what counts), and runs nested
  # `npm install`s in lib/vscode whose native modules (node-pty, kerberos, spdlog...) have install
  # scripts: npm >= 11 skips dependency install scripts unless allowed, hence the env settings,
  # which the nested npm processes inherit.
  (cd "$PREFIX" && env "${nodedir[@]}" TMPDIR="$tmp" npm_config_yes=true npm_config_unsafe_perm=true \
    npm_config_dangerously_allow_all_scripts=true npm_config_update_notifier=false \
    npm install --no-audit --no-fund "code-server@$CODE_SERVER_VERSION") > "$INSTALL_LOG" 2>&1 || {
      tail -40 "$INSTALL_LOG" >&2
      die "npm install code-server@$CODE_SERVER_VERSION failed (last lines above; full log: $INSTALL_LOG)"
    }
  rm -rf "$tmp"
  [ -x "$RG_BIN" ] || die "code-server installed, but its ripgrep is missing at $RG_BIN (full log: $INSTALL_LOG)"
  code_server_installed || die "npm installed code-server, but $PACKAGE_DIR is not version $CODE_SERVER_VERSION (full log: $INSTALL_LOG)"
  log "code-server $CODE_SERVER_VERSION installed in $PREFIX"
}

install_playwright_core() {
  if [ -f "$ROOT/node_modules/playwright-core/package.json" ]; then
    log "playwright-core present"
    return
  fi
  log "npm install (playwright-core is a devDependency)"
  (cd "$ROOT" && npm install --no-audit --no-fund) || die "npm install failed (see above)"
}

check_node
install_debian_packages
install_code_server
install_playwright_core
# Versions from the files: running `code-server --version` would write ~/.config/code-server.
log "ready: code-server $(node -p "require('$PACKAGE_DIR/package.json').version"), $(dpkg-query -W -f='chromium ${Version}' chromium)"
