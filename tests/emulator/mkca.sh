#!/bin/bash
# mkca.sh DIR: makes a throwaway test CA and a server certificate for the
# Azure emulator in DIR: ca.pem (trust this), ca.key, server.pem, server.key.
# The server certificate names every host the emulator serves.
set -euo pipefail
dir=${1:?usage: mkca.sh DIR}
mkdir -p "$dir"
cd "$dir"
umask 077
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -sha256 \
	-keyout ca.key -out ca.pem -subj "/CN=xtcmk emulator test CA" \
	-addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -sha256 -keyout server.key \
	-out server.csr -subj "/CN=login.microsoftonline.com" 2>/dev/null
cat > server.ext <<EXT
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:login.microsoftonline.com,DNS:login.windows.net,DNS:*.vault.azure.net,DNS:*.managedhsm.azure.net,DNS:localhost,IP:127.0.0.1
EXT
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
	-days 2 -sha256 -extfile server.ext -out server.pem 2>/dev/null
rm -f server.csr server.ext ca.srl
chmod 644 ca.pem server.pem
