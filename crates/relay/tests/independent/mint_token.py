#!/usr/bin/env python3
"""Mints a lockstep token with PyJWT, the way the Jellyfin plugin does (docs/AUTH.md).

An independent issuer for `crates/relay/tests/independent_token.rs`: nothing here comes from the
relay's code. The claim set is the Jellyfin plugin's (`jellyfin-plugin/JwtIssuer.cs`):

    sub    the Jellyfin user id as 32 lowercase hex digits (.NET Guid "N" format)
    name   the user name
    perms  ["create_rooms"] and/or ["moderate"], possibly empty
    aud    the audience (default "lockstep")
    iss    the issuer (default "jellyfin")
    exp    iat + lifetime
    iat    issued at, UNIX seconds

signed HS256 with the UTF-8 bytes of the shared secret, header {"typ":"JWT","alg":"HS256"}
(the plugin's and docs/AUTH.md's key order; `--sorted-header` uses PyJWT's default, sorted
keys). Prints the token, then on a second line the payload as PyJWT decodes and verifies it.

Usage:
    mint_token.py --secret S --user-id UUID --name N [--perm P ...] [--audience A]
                  [--issuer I] [--iat SECONDS] [--lifetime SECONDS] [--sorted-header]
"""

import argparse
import json
import sys
import time
import uuid
import warnings

import jwt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secret", required=True, help="HS256 shared secret (used as UTF-8 bytes)")
    parser.add_argument("--user-id", required=True, help="the Jellyfin user id, any UUID form")
    parser.add_argument("--name", required=True)
    parser.add_argument("--perm", action="append", default=[], help="create_rooms or moderate")
    parser.add_argument("--audience", default="lockstep")
    parser.add_argument("--issuer", default="jellyfin")
    parser.add_argument("--iat", type=int, default=None, help="issued at (default: now)")
    parser.add_argument("--lifetime", type=int, default=600, help="seconds until exp")
    parser.add_argument("--sorted-header", action="store_true", help="PyJWT's default header order")
    args = parser.parse_args()

    iat = int(time.time()) if args.iat is None else args.iat
    payload = {
        "sub": uuid.UUID(args.user_id).hex,
        "name": args.name,
        "perms": args.perm,
        "aud": args.audience,
        "iss": args.issuer,
        "exp": iat + args.lifetime,
        "iat": iat,
    }
    # The docs' example secret is short on purpose; PyJWT warns about it on stderr.
    warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
    token = jwt.encode(
        payload,
        args.secret.encode("utf-8"),
        algorithm="HS256",
        headers={"typ": "JWT", "alg": "HS256"},
        sort_headers=args.sorted_header,
    )
    # PyJWT's own round trip: signature, audience and issuer (not expiry: expired tokens are
    # minted on purpose).
    decoded = jwt.decode(
        token,
        args.secret.encode("utf-8"),
        algorithms=["HS256"],
        audience=args.audience,
        issuer=args.issuer,
        options={"verify_exp": False, "verify_iat": False},
    )
    print(token)
    print(json.dumps(decoded, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
