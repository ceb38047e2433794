"""sev-snp-measure's ``id_block``: an ID block for QEMU and its key digests."""
import base64

from .. import _vmsa


def snp_calc_id_block(ld: bytes, idkey_file: str, authorkey_file: str) -> str:
    """``id-block=…,id-auth=…`` for QEMU's ``sev-snp-guest``, then the ID and author key
    digests, as ``snp-create-id-block`` prints them. The signatures are ECDSA P-384 with
    deterministic (RFC 6979) nonces; sev-snp-measure's are random, so only they differ."""
    with open(idkey_file) as f:
        id_pem = f.read()
    with open(authorkey_file) as f:
        author_pem = f.read()
    block, auth, id_digest, author_digest = _vmsa.id_block(bytes(ld), id_pem, author_pem)
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return (f"id-block={b64(block)},id-auth={b64(auth)}\n"
            f"id_key_hash: {b64(id_digest)}\n"
            f"author_key: {b64(author_digest)}")
