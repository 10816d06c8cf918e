#!/usr/bin/env bash
# Prepares a fresh Raspberry Pi OS (Bookworm, 64-bit) node for Heliomesh. Run it on the Pi as
# root. Every step first looks at what is already there, so a second run changes nothing and
# says so. See deploy/README.md.
#
# For tests, HELIOMESH_ROOT=/some/dir redirects every file the script reads or writes under
# that directory. Commands act on the real system, which is not under that directory, so with
# HELIOMESH_ROOT set they are printed and not executed.
set -euo pipefail

readonly STEPS_ALL=(i2c node install user register config service)
readonly SERVICE_USER=heliomesh
readonly INSTALL_DIR=/opt/heliomesh
readonly CONFIG_DIR=/etc/heliomesh
readonly CONFIG_FILE=$CONFIG_DIR/agent.yaml
readonly UNIT_NAME=heliomesh-agent.service
readonly UNIT_IN_TREE=deploy/systemd/$UNIT_NAME
readonly SOURCE_MARK=.heliomesh-source
# Same rule as the gateway's node ids (gateway/broker/credentials.ts): they are MQTT client ids.
readonly ID_RE='^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$'

ROOT=${HELIOMESH_ROOT:-}
ROOT=${ROOT%/}
DRY_RUN=0
NODE_ID='' GROUP='' FLEET='' GATEWAY='' SOURCE='' GATEWAY_SSH='' NODES_FILE='' NODE_PASSWORD=''
REINSTALL=0
STEPS=("${STEPS_ALL[@]}")
CHANGES=0

usage() {
  cat <<'EOF'
Usage: prepare-pi.sh --node-id ID --group GROUP --gateway mqtt://HOST:1883 --source SRC
                     (--gateway-ssh USER@HOST | --node-password PASSWORD) [options]

Prepares this Raspberry Pi as a Heliomesh node: enables I2C, installs Node.js 20, installs
Heliomesh into /opt/heliomesh, creates the 'heliomesh' service user (groups i2c, gpio),
registers the node with the gateway, writes /etc/heliomesh/agent.yaml and enables the
heliomesh-agent systemd service. Run as root. Safe to run again: finished steps are skipped.

Required:
  --node-id ID           this node's id (letters, digits, _ or -; at most 63), also its MQTT client id
  --group GROUP          the block-range group this node serves
  --gateway URL          the gateway's MQTT broker, mqtt://HOST[:PORT] or mqtts://HOST[:PORT]
  --source SRC           Heliomesh to install: a tarball (.tgz/.tar.gz, e.g. from npm pack),
                         a git URL (https://…/x.git, git+…, git@…:…), or an npm package name

Registration (one of them, unless agent.yaml already holds a password):
  --gateway-ssh USER@HOST   run 'heliomesh gateway add-node ID' on the gateway over SSH
  --gateway-nodes-file PATH credentials file on the gateway (its add-node --file)
  --node-password PASSWORD  a password the operator already issued with add-node

Options:
  --fleet FLEET          the fleet (topic prefix heliomesh/FLEET/...); the agent's default when omitted
  --steps LIST           comma-separated subset of: i2c,node,install,user,register,config,service
  --reinstall            reinstall Heliomesh and re-register even when already done
  --dry-run              print every step it would take and change nothing
  -h, --help             this text

Environment:
  HELIOMESH_ROOT=DIR     treat DIR as the file-system root (for tests); commands are not run
  HELIOMESH_SSH=CMD      use CMD instead of ssh for the gateway call (for tests)
EOF
}

die() {
  echo "prepare-pi: $*" >&2
  exit 2
}

# Options take a value; a missing one (or the next flag in its place) is an operator's typo.
need_value() {
  if [[ $# -lt 2 || -z $2 || $2 == --* ]]; then die "$1 needs a value (see --help)"; fi
}

parse_args() {
  while [[ $# -gt 0 ]]; do
    case $1 in
      -h | --help) usage; exit 0 ;;
      --dry-run) DRY_RUN=1; shift ;;
      --reinstall) REINSTALL=1; shift ;;
      --node-id) need_value "$@"; NODE_ID=$2; shift 2 ;;
      --group) need_value "$@"; GROUP=$2; shift 2 ;;
      --fleet) need_value "$@"; FLEET=$2; shift 2 ;;
      --gateway) need_value "$@"; GATEWAY=$2; shift 2 ;;
      --source) need_value "$@"; SOURCE=$2; shift 2 ;;
      --gateway-ssh) need_value "$@"; GATEWAY_SSH=$2; shift 2 ;;
      --gateway-nodes-file) need_value "$@"; NODES_FILE=$2; shift 2 ;;
      --node-password) need_value "$@"; NODE_PASSWORD=$2; shift 2 ;;
      --steps) need_value "$@"; IFS=, read -r -a STEPS <<<"$2"; shift 2 ;;
      *) die "unknown argument '$1' (see --help)" ;;
    esac
  done
}

wants() {
  local s
  for s in "${STEPS[@]}"; do [[ $s == "$1" ]] && return 0; done
  return 1
}

validate() {
  local s k known
  for s in "${STEPS[@]}"; do
    known=0
    for k in "${STEPS_ALL[@]}"; do [[ $s == "$k" ]] && known=1; done
    [[ $known == 1 ]] || die "--steps: unknown step '$s'; choose from ${STEPS_ALL[*]}"
  done
  local missing=()
  if wants register || wants config; then
    [[ -n $NODE_ID ]] || missing+=(--node-id)
    [[ -n $GROUP ]] || missing+=(--group)
    [[ -n $GATEWAY ]] || missing+=(--gateway)
  fi
  if wants install; then [[ -n $SOURCE ]] || missing+=(--source); fi
  [[ ${#missing[@]} -eq 0 ]] || die "missing required flag(s): ${missing[*]} (see --help)"

  if [[ -n $NODE_ID && ! $NODE_ID =~ $ID_RE ]]; then
    die "--node-id '$NODE_ID' is not a valid node id: use 1-63 letters, digits, _ or -, starting with a letter or digit"
  fi
  if [[ -n $GROUP && ! $GROUP =~ $ID_RE ]]; then
    die "--group '$GROUP' is not a valid group name: use 1-63 letters, digits, _ or -"
  fi
  # The protocol's rule for fleet ids (protocol/topics.ts): one MQTT topic level.
  if [[ -n $FLEET && ! $FLEET =~ ^[A-Za-z0-9_.-]{1,64}$ ]]; then
    die "--fleet '$FLEET' is not a valid fleet id: use 1-64 letters, digits, _, . or -"
  fi
  if [[ -n $GATEWAY ]]; then
    [[ $GATEWAY =~ ^mqtts?://[A-Za-z0-9.-]+(:([0-9]{1,5}))?/?$ ]] ||
      die "--gateway '$GATEWAY' is not an MQTT URL; write it as mqtt://HOST:1883 (or mqtts://HOST:8883)"
    local port=${BASH_REMATCH[2]:-1883}
    ((10#$port >= 1 && 10#$port <= 65535)) || die "--gateway: port $port is out of range 1-65535"
  fi
  if [[ -n $GATEWAY_SSH && -n $NODE_PASSWORD ]]; then
    die "give either --gateway-ssh or --node-password, not both"
  fi
  if [[ -n $GATEWAY_SSH && ! $GATEWAY_SSH =~ ^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+$ ]]; then
    die "--gateway-ssh '$GATEWAY_SSH' should look like user@host"
  fi
  if [[ $NODE_PASSWORD == *$'\n'* ]]; then die "--node-password must be a single line"; fi
  if [[ -n $SOURCE ]] && [[ $(source_kind "$SOURCE") == tarball && ! -f $SOURCE ]]; then
    die "--source: tarball '$SOURCE' does not exist"
  fi
  if [[ $DRY_RUN == 0 && -z $ROOT && $EUID -ne 0 ]]; then
    die "run as root (sudo $0 …), or try --dry-run first"
  fi
}

# Every command that changes the system goes through here.
run() {
  if [[ $DRY_RUN == 1 ]]; then
    echo "    would run: $*"
  elif [[ -n $ROOT ]]; then
    echo "    not run (HELIOMESH_ROOT is set): $*"
  else
    echo "    + $*"
    "$@"
  fi
  CHANGES=$((CHANGES + 1))
}

say() { echo "    $*"; }

# Paths of the system being prepared.
p() { printf '%s%s' "$ROOT" "$1"; }

step_no=0
step() {
  step_no=$((step_no + 1))
  echo "==> [$step_no/${#STEPS[@]}] $1: $2"
}

# A command of the system being prepared: under HELIOMESH_ROOT it must exist there.
has_cmd() {
  if [[ -n $ROOT ]]; then
    [[ -x $(p "/usr/bin/$1") || -x $(p "/usr/sbin/$1") || -x $(p "/bin/$1") ]]
  else
    command -v "$1" >/dev/null 2>&1
  fi
}

# Makes FILE contain LINE exactly once, as an active line. A commented or differently valued
# `KEY=` line (KEY = text up to the last '=') is replaced in place rather than duplicated.
ensure_line() {
  local file=$1 line=$2 section_guard=${3:-}
  local key=${line%=*}
  local esc_key
  esc_key=$(printf '%s' "$key" | sed 's/[][\.*^$/]/\\&/g')
  if [[ -f $file ]] && grep -qxF "$line" "$file"; then
    say "$line is already in ${file#"$ROOT"}"
    return
  fi
  if [[ $key != "$line" && -f $file ]] && grep -Eq "^[[:space:]]*#?[[:space:]]*${esc_key}=" "$file"; then
    if [[ $DRY_RUN == 1 ]]; then
      say "would set $line in ${file#"$ROOT"} (replacing: $(grep -E "^[[:space:]]*#?[[:space:]]*${esc_key}=" "$file" | head -n1))"
    else
      say "setting $line in ${file#"$ROOT"}"
      sed -i -E "0,/^[[:space:]]*#?[[:space:]]*${esc_key}=.*/s//$(printf '%s' "$line" | sed 's/[&/\]/\\&/g')/" "$file"
    fi
    CHANGES=$((CHANGES + 1))
    return
  fi
  if [[ $DRY_RUN == 1 ]]; then
    say "would append $line to ${file#"$ROOT"}"
  else
    say "appending $line to ${file#"$ROOT"}"
    # config.txt applies lines after a [pi4]-style filter only to that model; [all] resets it.
    if [[ -n $section_guard && -f $file ]] && grep -q '^\[' "$file" && [[ $(grep '^\[' "$file" | tail -n1) != '[all]' ]]; then
      printf '[all]\n' >>"$file"
    fi
    printf '%s\n' "$line" >>"$file"
  fi
  CHANGES=$((CHANGES + 1))
}

do_i2c() {
  step i2c "enable the I2C bus (the INA219 and BQ25895 sit on it)"
  if has_cmd raspi-config; then
    # raspi-config's get_i2c prints 0 when the bus is enabled.
    if [[ -z $ROOT ]] && [[ $(raspi-config nonint get_i2c) == 0 ]]; then
      say "I2C is already enabled (raspi-config)"
    else
      run raspi-config nonint do_i2c 0
    fi
    return
  fi
  local config
  if [[ -f $(p /boot/firmware/config.txt) ]]; then config=$(p /boot/firmware/config.txt) # Bookworm
  elif [[ -f $(p /boot/config.txt) ]]; then config=$(p /boot/config.txt)                 # Bullseye and older
  else
    die "i2c: no raspi-config and neither /boot/firmware/config.txt nor /boot/config.txt exists; is this a Raspberry Pi OS image with the boot partition mounted?"
  fi
  local before=$CHANGES
  ensure_line "$config" dtparam=i2c_arm=on section-aware
  ensure_line "$(p /etc/modules)" i2c-dev
  if ((CHANGES > before)); then say "(the change takes effect at the next reboot)"; fi
}

node_major() {
  local v
  if [[ -n $ROOT ]]; then
    [[ -x $(p /usr/bin/node) ]] || return 1
    v=$("$(p /usr/bin/node)" --version 2>/dev/null) || return 1
  else
    command -v node >/dev/null 2>&1 || return 1
    v=$(node --version 2>/dev/null) || return 1
  fi
  v=${v#v}
  echo "${v%%.*}"
}

do_node() {
  step node "install Node.js 20 or newer"
  local major
  if major=$(node_major) && ((major >= 20)); then
    say "Node.js $major is already installed"
    return
  fi
  say "Node.js is ${major:+too old (v$major)}${major:-missing}"
  # Debian's own nodejs package is used when the archive offers 20 or newer (Trixie does).
  # Bookworm and Raspberry Pi OS Bookworm ship 18, so there NodeSource's apt repository for
  # the 20.x line is added, signed with NodeSource's repository key.
  local candidate=''
  if command -v apt-cache >/dev/null 2>&1; then
    candidate=$(apt-cache policy nodejs 2>/dev/null | awk '/Candidate:/ {print $2}')
  fi
  local cmajor=${candidate#*:}
  cmajor=${cmajor%%.*}
  if [[ $cmajor =~ ^[0-9]+$ ]] && ((cmajor >= 20)); then
    say "the distribution's nodejs package is $candidate: installing it"
    run apt-get install -y --no-install-recommends nodejs npm
    return
  fi
  say "the distribution offers nodejs ${candidate:-(none)}: adding NodeSource's node_20.x repository"
  run apt-get update
  run apt-get install -y --no-install-recommends ca-certificates curl gnupg
  run install -d -m 0755 /etc/apt/keyrings
  run sh -c 'curl -fsSL https://deb.nodesource.com/gpgkey/nodesource-repo.gpg.key | gpg --dearmor --yes -o /etc/apt/keyrings/nodesource.gpg'
  run sh -c 'echo "deb [signed-by=/etc/apt/keyrings/nodesource.gpg] https://deb.nodesource.com/node_20.x nodistro main" > /etc/apt/sources.list.d/nodesource.list'
  run apt-get update
  # NodeSource's nodejs package includes npm.
  run apt-get install -y nodejs
}

source_kind() {
  case $1 in
    *.tgz | *.tar.gz) echo tarball ;;
    git+* | git@* | git://* | *.git | https://github.com/* | https://gitlab.com/*) echo git ;;
    *) echo npm ;;
  esac
}

do_install() {
  step install "install Heliomesh from $SOURCE into $INSTALL_DIR"
  local dir mark kind
  dir=$(p "$INSTALL_DIR")
  mark=$dir/$SOURCE_MARK
  kind=$(source_kind "$SOURCE")
  if [[ $REINSTALL == 0 && -f $mark && $(cat "$mark") == "$SOURCE" && -f $dir/package.json ]]; then
    say "already installed from $SOURCE (pass --reinstall to install it again)"
    return
  fi
  if [[ -e $dir ]]; then run rm -rf "$INSTALL_DIR"; fi
  run install -d -m 0755 "$INSTALL_DIR"
  case $kind in
    tarball)
      # npm pack puts everything under package/; any tarball with one top folder works.
      run tar -xzf "$(realpath -m "$SOURCE")" -C "$INSTALL_DIR" --strip-components=1 --no-same-owner
      ;;
    npm)
      # npm pack fetches the published tarball into an empty folder; it is the only .tgz there.
      run sh -c 'd=$(mktemp -d) && cd "$d" && npm pack "$1" >/dev/null && tar -xzf "$d"/*.tgz -C "$2" --strip-components=1 --no-same-owner && rm -rf "$d"' sh "$SOURCE" "$INSTALL_DIR"
      ;;
    git)
      run git clone --depth 1 "${SOURCE#git+}" "$INSTALL_DIR"
      ;;
  esac
  if [[ $kind == git ]]; then
    # A checkout has no dist/: build it with the dev tools, then drop them.
    run sh -c 'cd "$1" && npm ci && npm prune --omit=dev' sh "$INSTALL_DIR"
  else
    # A packed tarball already holds dist/. Its `prepare` script (the TypeScript build) would
    # run on install and fail without the dev tools, so it is removed from the installed
    # package.json; the dependencies' own install scripts (the native i2c-bus and onoff)
    # still run. npm pack never ships package-lock.json; without one, npm install resolves
    # the same semver ranges.
    run sh -c 'cd "$1" && npm pkg delete scripts.prepare' sh "$INSTALL_DIR"
    run sh -c 'cd "$1" && if [ -f package-lock.json ] || [ -f npm-shrinkwrap.json ]; then npm ci --omit=dev; else npm install --omit=dev; fi' sh "$INSTALL_DIR"
  fi
  run ln -sfn "$INSTALL_DIR/dist/cli/index.js" /usr/local/bin/heliomesh
  run sh -c 'printf "%s" "$1" > "$2"' sh "$SOURCE" "$INSTALL_DIR/$SOURCE_MARK"
}

# Account lookups read the prepared system's /etc/group and /etc/passwd under HELIOMESH_ROOT.
group_exists() {
  if [[ -n $ROOT ]]; then grep -q "^$1:" "$(p /etc/group)" 2>/dev/null; else getent group "$1" >/dev/null; fi
}

user_exists() {
  if [[ -n $ROOT ]]; then grep -q "^$1:" "$(p /etc/passwd)" 2>/dev/null; else id -u "$1" >/dev/null 2>&1; fi
}

# Supplementary groups only: the ones the service needs are never a system user's primary group.
user_in_group() {
  if [[ -n $ROOT ]]; then
    grep -Eq "^$2:[^:]*:[^:]*:(.*,)?$1(,.*)?$" "$(p /etc/group)" 2>/dev/null
  else
    [[ " $(id -nG "$1") " == *" $2 "* ]]
  fi
}

do_user() {
  step user "create the system user $SERVICE_USER (no login shell) in groups i2c and gpio"
  local g
  for g in i2c gpio; do
    # Raspberry Pi OS has both groups (udev gives them /dev/i2c-* and the GPIO chips); other
    # images may not.
    if group_exists "$g"; then say "group $g exists"; else run groupadd --system "$g"; fi
  done
  if user_exists "$SERVICE_USER"; then
    for g in i2c gpio; do
      if user_in_group "$SERVICE_USER" "$g"; then say "$SERVICE_USER is already in $g"; else run usermod -a -G "$g" "$SERVICE_USER"; fi
    done
  else
    run useradd --system --no-create-home --home-dir /var/lib/heliomesh --shell /usr/sbin/nologin --groups i2c,gpio "$SERVICE_USER"
  fi
}

# YAML is edited with the installed Heliomesh's own `yaml` library (the one the agent reads
# its config with), so comments and every other key survive. Returns 1 when the library or
# node is not there yet, e.g. in a dry run before the install step.
have_yaml_lib() {
  command -v node >/dev/null 2>&1 && [[ -f $(p "$INSTALL_DIR")/node_modules/yaml/package.json ]]
}

# yaml_tool get-password FILE | yaml_tool set FILE: reads the values from HM_* variables.
yaml_tool() {
  # shellcheck disable=SC2016 # the program is JavaScript, expanded by node, not by bash
  node --input-type=module -e '
    import { createRequire } from "node:module";
    import { readFileSync } from "node:fs";
    const [lib, mode, file] = process.argv.slice(1);
    const YAML = createRequire(lib + "/package.json")("yaml");
    const doc = YAML.parseDocument(readFileSync(file, "utf8"));
    if (doc.errors.length) {
      console.error(`${file} is not valid YAML: ${doc.errors[0].message}`);
      process.exit(1);
    }
    const e = process.env;
    if (mode === "get-password") {
      const pw = doc.get("nodeId") === e.HM_NODE_ID ? doc.getIn(["gateway", "password"]) : undefined;
      if (typeof pw !== "string" || pw === "") process.exit(1);
      process.stdout.write(pw);
    } else {
      doc.set("nodeId", e.HM_NODE_ID);
      doc.set("group", e.HM_GROUP);
      if (e.HM_FLEET) doc.set("fleet", e.HM_FLEET);
      doc.setIn(["gateway", "url"], e.HM_GATEWAY);
      doc.setIn(["gateway", "username"], e.HM_NODE_ID);
      doc.setIn(["gateway", "password"], e.HM_PASSWORD);
      process.stdout.write(String(doc));
    }
  ' "$(p "$INSTALL_DIR")" "$@"
}

# The password already in agent.yaml for this node, if the file is for this node.
existing_password() {
  local f
  f=$(p "$CONFIG_FILE")
  [[ -r $f ]] || return 1
  if have_yaml_lib; then
    HM_NODE_ID=$NODE_ID yaml_tool get-password "$f"
    return
  fi
  grep -qxF "nodeId: $NODE_ID" "$f" || return 1
  local line
  line=$(grep -E '^  password: ' "$f" | head -n1) || return 1
  line=${line#  password: \'}
  line=${line%\'}
  printf '%s' "${line//\'\'/\'}"
}

do_register() {
  step register "register node $NODE_ID with the gateway"
  if [[ -n $NODE_PASSWORD ]]; then
    say "using the password given with --node-password"
    return
  fi
  if [[ $REINSTALL == 0 ]] && NODE_PASSWORD=$(existing_password) && [[ -n $NODE_PASSWORD ]]; then
    say "${CONFIG_FILE} already holds credentials for $NODE_ID (pass --reinstall with --gateway-ssh to issue new ones)"
    return
  fi
  NODE_PASSWORD=''
  [[ -n $GATEWAY_SSH ]] || die "register: no credentials for $NODE_ID; give --gateway-ssh USER@HOST to run 'heliomesh gateway add-node $NODE_ID' there, or --node-password with a password it printed"
  local remote=(heliomesh gateway add-node "$NODE_ID")
  [[ -z $NODES_FILE ]] || remote+=(--file "$NODES_FILE")
  [[ $REINSTALL == 0 ]] || remote+=(--replace)
  # ssh hands the remote shell one joined string, so each word is quoted for it.
  local quoted
  quoted=$(printf '%q ' "${remote[@]}")
  quoted=${quoted% }
  # Under HELIOMESH_ROOT only a stand-in named by HELIOMESH_SSH is called, never the real ssh.
  local ssh_cmd=${HELIOMESH_SSH:-ssh}
  if [[ $DRY_RUN == 1 || (-n $ROOT && -z ${HELIOMESH_SSH:-}) ]]; then
    run ssh "$GATEWAY_SSH" "$quoted"
    NODE_PASSWORD='<printed by add-node>'
    return
  fi
  echo "    + ssh $GATEWAY_SSH $quoted"
  local out
  # add-node prints the password once, on a line 'password: …'; nothing else is kept.
  out=$("$ssh_cmd" -o BatchMode=yes "$GATEWAY_SSH" "$quoted") ||
    die "register: 'ssh $GATEWAY_SSH $quoted' failed; check SSH access and that heliomesh is on the gateway's PATH (if the node already exists there, add --reinstall to issue a new password)"
  NODE_PASSWORD=$(printf '%s\n' "$out" | sed -n 's/^password: //p' | head -n1)
  [[ -n $NODE_PASSWORD ]] || die "register: the gateway's add-node output had no 'password:' line"
  CHANGES=$((CHANGES + 1))
}

yaml_quote() { printf "'%s'" "${1//\'/\'\'}"; }

agent_yaml() {
  cat <<EOF
# Written by deploy/prepare-pi.sh with the node's keys only. The agent also needs its
# hardware, powerModes, modeTable and spool settings: see deploy/agent.example.yaml.
nodeId: $NODE_ID
${FLEET:+fleet: $FLEET
}group: $GROUP
gateway:
  url: $GATEWAY
  username: $NODE_ID
  password: $(yaml_quote "$1")
EOF
}

do_config() {
  step config "write $CONFIG_FILE (mode 0600, owner $SERVICE_USER)"
  local f password=$NODE_PASSWORD
  f=$(p "$CONFIG_FILE")
  if [[ -z $password ]] && ! wants register; then password=$(existing_password || true); fi
  [[ -n $password ]] || die "config: no node password; run the register step too (--gateway-ssh or --node-password)"
  # The base is the node's current file (an operator's later edits are kept), else the
  # example config the installed tree ships.
  local want base='' example
  example=$(p "$INSTALL_DIR/deploy/agent.example.yaml")
  if [[ -f $f ]]; then base=$f; elif [[ -f $example ]]; then base=$example; fi
  if [[ -n $base ]] && have_yaml_lib; then
    want=$(HM_NODE_ID=$NODE_ID HM_GROUP=$GROUP HM_FLEET=$FLEET HM_GATEWAY=$GATEWAY HM_PASSWORD=$password yaml_tool set "$base") ||
      die "config: could not fill in ${base#"$ROOT"}; fix the YAML error above and run again"
    [[ $base == "$f" ]] || say "starting from $INSTALL_DIR/deploy/agent.example.yaml"
  else
    want=$(agent_yaml "$password")
    if [[ ! -f $example && $DRY_RUN == 0 ]]; then
      say "WARNING: $INSTALL_DIR/deploy/agent.example.yaml is missing, so only the node's keys are written;"
      say "the agent also needs its hardware, powerModes, modeTable and spool settings in $CONFIG_FILE"
    fi
  fi
  if [[ -f $f && $(cat "$f") == "$want" ]]; then
    say "$CONFIG_FILE is up to date"
  elif [[ $DRY_RUN == 1 ]]; then
    say "would write $CONFIG_FILE: nodeId $NODE_ID, group $GROUP, gateway $GATEWAY, password (hidden)"
    CHANGES=$((CHANGES + 1))
  else
    say "writing $CONFIG_FILE"
    mkdir -p "$(dirname "$f")"
    # Created 0600 from the start so the password is never readable by others, even briefly.
    (umask 077 && printf '%s\n' "$want" >"$f.tmp" && mv -f "$f.tmp" "$f")
    CHANGES=$((CHANGES + 1))
  fi
  local owner
  owner=$(stat -c %U:%a "$f" 2>/dev/null || true)
  if [[ $owner != "$SERVICE_USER:600" ]]; then
    run chown "$SERVICE_USER:$SERVICE_USER" "$CONFIG_FILE"
    run chmod 0600 "$CONFIG_FILE"
  fi
}

do_service() {
  step service "install and enable the systemd unit $UNIT_NAME"
  local src dst
  src=$(p "$INSTALL_DIR/$UNIT_IN_TREE")
  dst=$(p "/etc/systemd/system/$UNIT_NAME")
  if [[ ! -f $src ]]; then
    if [[ $DRY_RUN == 1 && ! -d $(p "$INSTALL_DIR") ]]; then
      say "would copy $INSTALL_DIR/$UNIT_IN_TREE once the install step has put the tree there"
      run systemctl daemon-reload
      run systemctl enable --now "$UNIT_NAME"
      return
    fi
    die "service: $INSTALL_DIR/$UNIT_IN_TREE does not exist; this Heliomesh version does not ship the agent's unit. Install a version that does (--source … --reinstall) and run again"
  fi
  if [[ -f $dst ]] && cmp -s "$src" "$dst"; then
    say "/etc/systemd/system/$UNIT_NAME is up to date"
  else
    run install -m 0644 "$INSTALL_DIR/$UNIT_IN_TREE" "/etc/systemd/system/$UNIT_NAME"
    run systemctl daemon-reload
  fi
  if [[ -z $ROOT ]] && systemctl is-enabled --quiet "$UNIT_NAME" 2>/dev/null; then
    say "$UNIT_NAME is already enabled"
  else
    run systemctl enable "$UNIT_NAME"
  fi
  if [[ -z $ROOT ]] && systemctl is-active --quiet "$UNIT_NAME" 2>/dev/null; then
    if ((CHANGES > 0)); then run systemctl restart "$UNIT_NAME"; else say "$UNIT_NAME is running"; fi
  else
    run systemctl start "$UNIT_NAME"
  fi
}

main() {
  parse_args "$@"
  validate
  [[ $DRY_RUN == 0 ]] || echo "dry run: nothing will be changed"
  [[ -z $ROOT ]] || echo "file-system root: $ROOT (commands are printed, not run)"
  local s
  for s in "${STEPS_ALL[@]}"; do
    if wants "$s"; then "do_$s"; fi
  done
  if [[ $DRY_RUN == 1 ]]; then
    echo "dry run finished: $CHANGES change(s) would be made"
  elif ((CHANGES == 0)); then
    echo "already prepared: nothing changed"
  else
    echo "done: $CHANGES change(s) made"
  fi
}

main "$@"
