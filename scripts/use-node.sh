# Puts the project's Node.js on PATH in the current shell, fetched from the npm registry (the
# official build, headers included) and cached outside the repository:
#
#   source scripts/use-node.sh        # the shipped line (24), the version pinned below
#   source scripts/use-node.sh 22     # the oldest supported line
#
# It also sets npm_config_nodedir, so a native addon built by `npm ci` compiles against this
# Node's headers rather than the machine's, and keeps npm reading the machine's global npmrc. Only `npm` and `tar` are needed; nothing but the npm
# registry is contacted, and only when the version is not cached yet. The cache is
# ${XDG_CACHE_HOME:-$HOME/.cache}/llm-webhook/node-v<version>-linux-<arch>.
#
# The exact versions live here and nowhere else (.nvmrc names the shipped line for nvm users).

LLM_WEBHOOK_NODE_24=24.22.3
LLM_WEBHOOK_NODE_22=22.23.5

llm_webhook_use_node() {
  case "${1:-24}" in
  24) set -- "$LLM_WEBHOOK_NODE_24" ;;
  22) set -- "$LLM_WEBHOOK_NODE_22" ;;
  *)
    echo "use-node.sh: unknown line '$1' (expected 24 or 22)" >&2
    return 2
    ;;
  esac
  case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) set -- "$1" x64 ;;
  Linux-aarch64 | Linux-arm64) set -- "$1" arm64 ;;
  *)
    echo "use-node.sh: no npm build of Node for $(uname -s)-$(uname -m); install Node $1 another way (nvm install)" >&2
    return 2
    ;;
  esac
  llm_webhook_node_dir="${XDG_CACHE_HOME:-$HOME/.cache}/llm-webhook/node-v$1-linux-$2"
  # npm reads its global config from <node's prefix>/etc/npmrc: with this Node first on PATH it
  # would no longer read the machine's (which may hold a CA file or a proxy). Keep that one.
  if [ -z "${npm_config_globalconfig:-}" ] && command -v npm >/dev/null 2>&1; then
    llm_webhook_npm_global="$(npm config get globalconfig 2>/dev/null)"
    if [ -f "$llm_webhook_npm_global" ]; then
      npm_config_globalconfig="$llm_webhook_npm_global"
      export npm_config_globalconfig
    fi
  fi
  if [ ! -x "$llm_webhook_node_dir/bin/node" ]; then
    echo "use-node.sh: fetching node-linux-$2@$1 from the npm registry into $llm_webhook_node_dir" >&2
    mkdir -p "${llm_webhook_node_dir%/*}" || return 1
    llm_webhook_node_tmp="$(mktemp -d "$llm_webhook_node_dir.tmp.XXXXXX")" || return 1
    if ! (cd "$llm_webhook_node_tmp" && npm pack --silent "node-linux-$2@$1" >/dev/null &&
      tar -xzf "node-linux-$2-$1.tgz" && rm "node-linux-$2-$1.tgz"); then
      rm -rf "$llm_webhook_node_tmp"
      echo "use-node.sh: could not fetch node-linux-$2@$1" >&2
      return 1
    fi
    # Renamed into place whole, so an interrupted fetch never leaves a half-extracted cache.
    rm -rf "$llm_webhook_node_dir"
    mv "$llm_webhook_node_tmp/package" "$llm_webhook_node_dir" && rm -rf "$llm_webhook_node_tmp" || return 1
  fi
  PATH="$llm_webhook_node_dir/bin:$PATH"
  npm_config_nodedir="$llm_webhook_node_dir"
  export PATH npm_config_nodedir
  hash -r 2>/dev/null || true
  echo "use-node.sh: node $(node --version) from $llm_webhook_node_dir" >&2
}

llm_webhook_use_node "$@"
