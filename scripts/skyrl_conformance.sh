#!/usr/bin/env bash
# Conformance with a real third-party Tinker trainer: SkyRL 0.3.0's Tinker
# API server (JAX on the CPU) driven by `asearcher train --config` through
# cmd/asearcher's TestTrainSkyRL: async RL steps with the ppo loss,
# checkpoints, kill -9 of the launcher, resume, then the sampler checkpoint
# downloaded through the archive route and exported as a PEFT adapter.
#
# The venv is big (about 6.6 GB: peft pulls torch and CUDA wheels that the
# CPU run never loads) and slow to install (2.5 min on an idle machine, 12
# min on a loaded one), so it is cached outside the clone and installed
# only on request:
#
#   ASEARCHER_SKYRL_VENV     the venv [~/.cache/asearcher/skyrl-venv]; used
#                            when it holds a finished install
#   ASEARCHER_SKYRL_INSTALL  1 = install it when absent (Python 3.12 from
#                            PATH or pyenv, versions pinned by
#                            scripts/skyrl_constraints.txt), bounded by
#                            ASEARCHER_SKYRL_INSTALL_TIMEOUT seconds [1800]
#   ASEARCHER_SKYRL_KEEP     a directory to copy the downloaded sampler
#                            archive into
#
# Skips (exit 0, with a message) when there is no venv and no install was
# asked for, or the install cannot be done here. SkyRL's API starts its
# engine with `uv run`; a pip install has no uv, so this script writes the
# shim scripts/skyrl_uv_shim.py as VENV/bin/uv. JAX's compilation cache
# (~/.cache/asearcher/skyrl-jax-cache) keeps later runs from compiling every
# shape again.
set -u
cd "$(dirname "$0")/.."
venv=${ASEARCHER_SKYRL_VENV:-$HOME/.cache/asearcher/skyrl-venv}
marker="$venv/.asearcher-install-complete"

skip() {
	echo "skyrl conformance: SKIPPED: $*"
	exit 0
}

installed() {
	[ -f "$marker" ] && "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('skyrl') != '0.3.0')" >/dev/null 2>&1
}

find_python312() {
	if command -v python3.12 >/dev/null 2>&1; then
		command -v python3.12
		return
	fi
	if command -v pyenv >/dev/null 2>&1; then
		for d in "$(pyenv root)"/versions/3.12*; do
			if [ -x "$d/bin/python3.12" ]; then
				echo "$d/bin/python3.12"
				return
			fi
		done
	fi
	return 1
}

if ! installed; then
	if [ "${ASEARCHER_SKYRL_INSTALL:-0}" != 1 ]; then
		skip "no SkyRL venv at $venv; ASEARCHER_SKYRL_INSTALL=1 bash scripts/skyrl_conformance.sh installs it (about 6.6 GB, minutes)"
	fi
	py=$(find_python312) || skip "Python 3.12 is not installed (skyrl 0.3.0 needs 3.12; 3.11 fails to import it)"
	command -v go >/dev/null 2>&1 || skip "go is not on PATH"
	# A half-finished install (a timeout, a kill) is started over.
	rm -rf "$venv"
	mkdir -p "$(dirname "$venv")"
	echo "skyrl conformance: installing skyrl[tinker,jax]==0.3.0 into $venv"
	start=$(date +%s)
	"$py" -m venv "$venv" || skip "$py -m venv failed"
	if ! timeout "${ASEARCHER_SKYRL_INSTALL_TIMEOUT:-1800}" "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
		-c scripts/skyrl_constraints.txt 'skyrl[tinker,jax]==0.3.0' 'jax[cpu]'; then
		rm -rf "$venv"
		skip "pip could not install skyrl[tinker,jax]==0.3.0 (no PyPI, no disk, or past the time limit)"
	fi
	touch "$marker"
	echo "skyrl conformance: installed in $(($(date +%s) - start)) s, $(du -sh "$venv" | cut -f1)"
fi

# The uv shim, with the venv's python in its #! line; written whole, then
# moved into place.
{
	echo "#!$venv/bin/python"
	cat scripts/skyrl_uv_shim.py
} >"$venv/bin/uv.tmp" && chmod 755 "$venv/bin/uv.tmp" && mv "$venv/bin/uv.tmp" "$venv/bin/uv" ||
	skip "cannot write the uv shim into $venv/bin"

export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-$HOME/.cache/asearcher/skyrl-jax-cache}
mkdir -p "$JAX_COMPILATION_CACHE_DIR"
echo "skyrl conformance: skyrl 0.3.0 in $venv"
# The test bounds its own waits; this bounds the whole, build included.
ASEARCHER_SKYRL_VENV=$venv timeout 1800 go test -count=1 -timeout 29m -run 'TestTrainSkyRL' -v ./cmd/asearcher/
