"""Who signed a file's active C2PA manifest (certificate common name, else issuer), or '' if unsigned."""

from __future__ import annotations

import json


def read_signer(path: str) -> str:
    try:
        import c2pa

        with c2pa.Reader(path) as reader:
            store = json.loads(reader.json())
    except Exception:  # no manifest, unreadable file, unsupported format: all mean "not signed"
        return ""
    manifest = store.get("manifests", {}).get(store.get("active_manifest", ""), {})
    info = manifest.get("signature_info") or {}
    return str(info.get("common_name") or info.get("issuer") or "")
