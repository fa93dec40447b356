#!/bin/sh
# First-boot setup of a web host.
set -eu
apt-get update -q
apt-get install -y -q nginx
