#!/usr/bin/env bash
# Create a VM the way the webhookd posts do it: az login --identity, then az vm create.
# POST /vm/create-az?vmname=myvm&rg=myrg  (optional: location=westeurope, image=Ubuntu2204)
# Parameters arrive as environment variables, webhookd style. Needs azure-cli on PATH; on
# Azure the VM's managed identity signs in, under `runner serve --sandbox` the sandbox's.
set -euo pipefail

: "${vmname:?vmname is required}"
: "${rg:?rg is required}"
location=${location:-westeurope}
image=${image:-Ubuntu2204}

echo "signing in with the managed identity"
az login --identity --output none

echo "creating resource group $rg in $location"
az group create --name "$rg" --location "$location" --output none

echo "creating VM $vmname ($image)"
az vm create \
  --resource-group "$rg" \
  --name "$vmname" \
  --image "$image" \
  --admin-username azureuser \
  --generate-ssh-keys \
  --output json
