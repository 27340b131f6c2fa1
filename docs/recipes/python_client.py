"""A Python client calling a service with a latchkey key (docs/relying-parties.md).

Usage: python3 python_client.py URL CA_FILE KEY_DIR
"""
import sys

import requests

url, ca_file, key_dir = sys.argv[1:4]
answer = requests.get(
    url,
    cert=(f"{key_dir}/cert.pem", f"{key_dir}/key.pem"),  # the leaf alone is enough
    verify=ca_file,  # the latchkey root (certs/ca.pem)
    timeout=10,
)
print(answer.status_code)
print(answer.text)
