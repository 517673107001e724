#!/usr/bin/env bash
# Dependency audit: pip-audit over exactly what the project's venv has installed, against the
# PyPI advisory data (https://pypi.org/pypi/<name>/<version>/json). It reports and never fails
# the build: an advisory published after a commit must not turn that commit's CI red. Run by
# .ci/run after the tests; `bash scripts/audit.sh` by hand. pip-audit lives in a venv of its own
# (.audit-venv) so that its dependencies do not mix with the project's.
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PIP_AUDIT_VERSION=2.10.1
AUDIT_VENV=.audit-venv
if [ ! -x .venv/bin/python ]; then
  echo "audit: no .venv (run make .venv first); skipped"
  exit 0
fi
if [ ! -x "$AUDIT_VENV/bin/pip-audit" ]; then
  if ! { python3 -m venv "$AUDIT_VENV" &&
         "$AUDIT_VENV/bin/python" -m pip install -q "pip-audit==$PIP_AUDIT_VERSION"; }; then
    echo "audit: could not install pip-audit $PIP_AUDIT_VERSION; skipped (not a failure)"
    exit 0
  fi
fi
.venv/bin/python -m pip freeze --exclude-editable --all > "$AUDIT_VENV/requirements.txt"
echo "audit: $(wc -l < "$AUDIT_VENV/requirements.txt") installed distributions"
out="$AUDIT_VENV/report.txt"
timeout 600 "$AUDIT_VENV/bin/pip-audit" -r "$AUDIT_VENV/requirements.txt" --no-deps \
  --disable-pip --progress-spinner off --vulnerability-service pypi --desc off >"$out" 2>&1
rc=$?
cat "$out"
total=$(wc -l < "$AUDIT_VENV/requirements.txt")
unaudited=$(grep -c "could not be audited" "$out")
if [ "$unaudited" -gt 0 ]; then
  echo "audit: $unaudited of $total distributions could not be audited (the advisory source" \
       "did not answer for them: is pypi.org's JSON API reachable from here?)"
fi
case $rc in
  0) [ "$unaudited" -lt "$total" ] && echo "audit: no known vulnerabilities in the" \
       "$((total - unaudited)) audited distributions" ;;
  1) echo "audit: known vulnerabilities listed above (reported, not failing the build)" ;;
  *) echo "audit: pip-audit could not complete (rc=$rc). Reported, not failing the build." ;;
esac
exit 0
