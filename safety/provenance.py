"""C2PA content credentials for generated clips (c2pa-python).

Every MP4 the product writes is signed with a manifest that says it was created by a trained algorithm
(`c2pa.created`, digitalSourceType trainedAlgorithmicMedia), names the generator and its version, and carries the
invisible watermark's payload as a soft binding, so the record can be found again after a re-encode strips the
manifest (re-encoding always strips it; the watermark survives).

The signing certificate is a DEMO certificate: on first use a private demo root CA and an ES256 signing
certificate are created in the data directory (`safety.datadir.data_dir()/c2pa/`, override with VASA_DATA_DIR).
No trust list contains that root, so validators report the manifest as valid but the signer as untrusted.
A deployment should replace `signer_chain.pem` / `signer_key.pem` with a certificate from a C2PA-trusted CA.
"""
from __future__ import annotations

import base64
import datetime as _dt
import json
import os
from pathlib import Path

from safety.datadir import data_dir

DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
SOFT_BINDING_ALG = "io.vasa.watermark.spread-spectrum.v1"
WATERMARK_LABEL = "io.vasa.watermark"
DEMO_NOTE = ("Signed with a self-made DEMO certificate (private root 'VASA demo root CA'); "
             "it is not on any C2PA trust list.")
_CERT_DIR = "c2pa"
_MIME = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".jpg": "image/jpeg",
         ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}


def cert_paths() -> dict[str, Path]:
    """Where the demo credentials live (they may not exist yet; see ensure_demo_certificate)."""
    d = data_dir() / _CERT_DIR
    return {"dir": d, "chain": d / "signer_chain.pem", "key": d / "signer_key.pem", "root": d / "root_ca.pem"}


def ensure_demo_certificate() -> dict[str, Path]:
    """Create the demo root CA and ES256 signing certificate on first use; return their paths.

    The root (CA:true, keyCertSign) signs an end-entity certificate (CA:false, digitalSignature,
    extendedKeyUsage emailProtection) as the C2PA profile requires; the chain file holds leaf + root.
    """
    paths = cert_paths()
    if paths["chain"].exists() and paths["key"].exists():
        return paths
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    paths["dir"].mkdir(parents=True, exist_ok=True, mode=0o700)
    now = _dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(minutes=5)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "VASA demo root CA (not trusted)"),
                           x509.NameAttribute(NameOID.ORGANIZATION_NAME, "VASA talking-head demo")])
    root = (x509.CertificateBuilder().subject_name(root_name).issuer_name(root_name)
            .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + _dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "VASA demo signer (demo certificate)"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "VASA talking-head demo")])
    leaf = (x509.CertificateBuilder().subject_name(name).issuer_name(root_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + _dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(paths["key"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)
    paths["chain"].write_bytes(leaf.public_bytes(pem) + root.public_bytes(pem))
    paths["root"].write_bytes(root.public_bytes(pem))
    (paths["dir"] / "README.txt").write_text(DEMO_NOTE + "\n")
    return paths


def _payload_hex(payload: int) -> str:
    from safety.watermark import payload_hex

    return payload_hex(payload)


def build_manifest(payload: int, generator: str, version: str, title: str = "clip.mp4") -> dict:
    """The manifest definition that sign_mp4 signs."""
    ph = _payload_hex(payload)
    value = base64.b64encode(bytes.fromhex(ph)).decode("ascii")
    return {
        "claim_generator_info": [{"name": generator, "version": version}],
        "title": title,
        "format": "video/mp4",
        "assertions": [
            {"label": "c2pa.actions.v2",
             "data": {"actions": [{
                 "action": "c2pa.created",
                 "digitalSourceType": DIGITAL_SOURCE_TYPE,
                 "softwareAgent": {"name": generator, "version": version},
                 "description": "Talking-head video generated from one portrait and one audio clip.",
             }]}},
            {"label": "c2pa.soft-binding",
             "data": {"alg": SOFT_BINDING_ALG,
                      "blocks": [{"scope": {}, "value": value}],
                      "name": "Invisible spread-spectrum video watermark (payload id)"}},
            {"label": WATERMARK_LABEL,
             "data": {"payload_hex": ph, "algorithm": SOFT_BINDING_ALG,
                      "verify": "python -m safety verify CLIP", "certificate": DEMO_NOTE}},
        ],
    }


def sign_mp4(src: Path, dst: Path, payload: int, generator: str, version: str) -> dict:
    """Sign `src` (an MP4) with a C2PA manifest and write the signed file to `dst` (may equal `src`).

    The manifest has a `c2pa.created` action (digitalSourceType trainedAlgorithmicMedia, the generator's name and
    version) and the watermark payload as a `c2pa.soft-binding`. Returns the manifest definition that was signed
    plus 'manifest_bytes' (size of the signed manifest) and 'certificate' (the demo note).
    """
    import c2pa

    src, dst = Path(src), Path(dst)
    paths = ensure_demo_certificate()
    manifest = build_manifest(payload, generator, version, title=dst.name)
    info = c2pa.C2paSignerInfo(alg=c2pa.C2paSigningAlg.ES256, sign_cert=paths["chain"].read_bytes(),
                               private_key=paths["key"].read_bytes(), ta_url=None)
    tmp = dst.with_name(dst.name + ".signing")
    # file streams, not bytes in memory: a long clip must not cost its size several times over in RAM
    with c2pa.Signer.from_info(info) as signer, c2pa.Builder(json.dumps(manifest)) as builder, \
            open(src, "rb") as source, open(tmp, "w+b") as target:
        manifest_bytes = builder.sign(signer, "video/mp4", source, target)
    os.replace(tmp, dst)
    return {**manifest, "manifest_bytes": len(manifest_bytes or b""), "certificate": DEMO_NOTE}


def _soft_binding_payload(assertions: list[dict]) -> str | None:
    for a in assertions:
        if a.get("label", "").startswith("c2pa.soft-binding"):
            for block in (a.get("data") or {}).get("blocks", []):
                try:
                    return base64.b64decode(block["value"]).hex()
                except Exception:
                    continue
    return None


def read_manifest(path: Path) -> dict | None:
    """Read and validate the C2PA manifest of a file; None if it has none (e.g. after a re-encode).

    Returns {'status': 'Valid' | 'Invalid' | 'Trusted' (the SDK's validation state), 'valid': bool,
    'trusted': bool, 'signer': issuer/common name, 'claims': [{'generator', 'actions', 'digital_source_type',
    'soft_binding_payload', 'title'}], 'errors': [failure codes], 'active_manifest': label}.
    """
    import c2pa

    path = Path(path)
    mime = _MIME.get(path.suffix.lower(), "video/mp4")
    try:
        with open(path, "rb") as stream, c2pa.Reader(mime, stream) as reader:
            store = json.loads(reader.json())
    except c2pa.C2paError as e:
        msg = str(e)
        low = msg.lower()
        if ("manifestnotfound" in low or "no jumbf" in low or "not found" in low or low.startswith("io")
                or "unsupportedtype" in low or "failed to fill whole buffer" in low):
            return None                     # no manifest, or not a container c2pa can read

        return {"status": "Invalid", "valid": False, "trusted": False, "signer": None, "claims": [],
                "errors": [msg], "active_manifest": None}
    state = store.get("validation_state") or ("Invalid" if store.get("validation_status") else "Valid")
    results = store.get("validation_results") or {}
    failures = []
    for scope in ("activeManifest",):
        failures += [f.get("code", "") for f in (results.get(scope) or {}).get("failure", [])]
    failures += [s.get("code", "") for s in store.get("validation_status") or []
                 if s.get("code") and not s["code"].endswith(("trusted", ".validated", ".match"))
                 and s.get("code") not in failures]
    untrusted = any("untrusted" in f for f in failures)
    hard_failures = [f for f in failures if "untrusted" not in f]
    claims = []
    active = store.get("active_manifest")
    signer = None
    for label, m in (store.get("manifests") or {}).items():
        assertions = m.get("assertions") or []
        actions, dst = [], None
        for a in assertions:
            if a.get("label", "").startswith("c2pa.actions"):
                for act in (a.get("data") or {}).get("actions", []):
                    actions.append(act.get("action"))
                    dst = dst or act.get("digitalSourceType")
        gen = m.get("claim_generator_info") or [{}]
        sig = m.get("signature_info") or {}
        if label == active:
            signer = sig.get("common_name") or sig.get("issuer")
        claims.append({"label": label, "title": m.get("title"),
                       "generator": {"name": gen[0].get("name"), "version": gen[0].get("version")},
                       "actions": actions, "digital_source_type": dst,
                       "soft_binding_payload": _soft_binding_payload(assertions),
                       "signer_issuer": sig.get("issuer"), "signed_at": sig.get("time")})
    if hard_failures:
        status = "Invalid"
    elif state in ("Valid", "Trusted"):
        status = state
    else:
        status = "Invalid" if state == "Invalid" else str(state)
    return {"status": status, "valid": status in ("Valid", "Trusted"), "trusted": status == "Trusted" and not untrusted,
            "signer": signer, "claims": claims, "errors": failures, "active_manifest": active}
