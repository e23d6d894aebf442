# Helpers the examples' test.sh files share: install only what is missing,
# then wait for things. Sourced, not run.
sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# need_pip MODULE... -- REQUIREMENT...: pip-install the requirements unless
# every module imports already.
need_pip() {
  local mods=() reqs=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do mods+=("$1"); shift; done
  shift; reqs=("$@")
  local m
  for m in "${mods[@]}"; do
    if ! python3 -c "import $m" 2>/dev/null; then
      python3 -m pip install --quiet --disable-pip-version-check "${reqs[@]}"
      return
    fi
  done
}

# need_apt FILE PACKAGE...: apt-get install the packages unless FILE exists.
need_apt() {
  local file=$1; shift
  [ -e "$file" ] && return
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# need_npm DIR: `npm ci` in DIR unless its node_modules match package-lock.json.
need_npm() {
  (cd "$1" && node -e '
    const lock = require("./package-lock.json").packages;
    for (const [p, v] of Object.entries(lock))
      if (p && require("./" + p + "/package.json").version !== v.version) process.exit(1);
  ' 2>/dev/null) || (cd "$1" && npm ci --no-audit --no-fund --silent)
}

# The broker the examples talk to (examples/run-all.sh exports these).
: "${AMQP_URL:=amqp://guest:guest@127.0.0.1:5672/%2F}"
export AMQP_URL
