#!/bin/sh
# Create a VM (a script that declares its parameters: the test suite's).
# runner-param: vmname required pattern=^[a-z][a-z0-9-]{0,14}$ -- the VM's name
# runner-param: rg required pattern=^[a-z0-9-]+$ -- the resource group
# runner-param: size choices=small,large default=small
# runner-param: note description="free text, spaces and all"
# runner-param: token secret -- an API token
echo "vmname=$vmname rg=$rg size=$size note=${note-unset} token=$token"
echo "body=$1"
