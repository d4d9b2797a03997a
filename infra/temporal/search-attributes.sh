#!/bin/sh
# Registers the dossier's custom search attributes (workflows/search.py) in a
# Temporal namespace, so staff can filter dossiers in the UI. Safe to run again:
# an attribute that exists already is left as it is.
#
#   TEMPORAL_ADDRESS=temporal:7233 TEMPORAL_NAMESPACE=default sh search-attributes.sh
set -eu

address="${TEMPORAL_ADDRESS:-localhost:7233}"
namespace="${TEMPORAL_NAMESPACE:-default}"

echo "waiting for Temporal at ${address}"
tries=0
until temporal operator cluster health --address "${address}" >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ "${tries}" -gt 120 ]; then
    echo "Temporal at ${address} did not answer within 4 minutes" >&2
    exit 1
  fi
  sleep 2
done

existing="$(temporal operator search-attribute list \
  --address "${address}" --namespace "${namespace}")"

create() {
  name="$1"
  type="$2"
  if printf '%s\n' "${existing}" | grep -qw "${name}"; then
    echo "${name} exists"
    return
  fi
  temporal operator search-attribute create \
    --address "${address}" --namespace "${namespace}" \
    --name "${name}" --type "${type}"
  echo "${name} (${type}) created"
}

create DossierStep Keyword
create DossierKind Keyword
create ProviderId Keyword
create ClientEnterpriseNumber Keyword
create NextDeadline Datetime
