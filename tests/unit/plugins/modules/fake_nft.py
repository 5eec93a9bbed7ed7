# -*- coding: utf-8 -*-
# A fake nft for the state-machine tests of hostfw.nftables.nft_table: one JSON state file
# ($FAKE_NFT_STATE) holds the tables; ``-f`` loads files of the atomic-replace form.
# Failure injection: FAKE_NFT_FAIL_APPLY=1 makes a real (non-scratch) ``-f`` fail;
# FAKE_NFT_FAIL_CHECK=TEXT makes ``-c -f PATH`` fail when TEXT is in PATH.
import json
import os
import sys

STATE = os.environ["FAKE_NFT_STATE"]


def load():
    try:
        with open(STATE) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {"tables": {}}


def save(state):
    with open(STATE + ".tmp", "w") as handle:
        json.dump(state, handle)
    os.rename(STATE + ".tmp", STATE)


def fail(msg, rc=1):
    sys.stderr.write("Error: %s\n" % msg)
    sys.exit(rc)


def parse(path, tables):
    """Apply the statements of ``path`` to a copy of ``tables``; return the copy."""
    tables = dict(tables)
    try:
        with open(path) as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        fail("Could not open file \"%s\": %s" % (path, exc.strerror))
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        words = line.split()
        if words[0] == "include":
            fail("include is not supported by the fake")
        if words[0] == "delete" and words[1] == "table" and len(words) == 4:
            key = "%s %s" % (words[2], words[3])
            if key not in tables:
                fail("No such file or directory; did you mean table '%s'?" % key)
            del tables[key]
            continue
        if words[0] == "table" and len(words) == 3:
            tables.setdefault("%s %s" % (words[1], words[2]), [])
            continue
        if words[0] == "table" and len(words) == 4 and words[3] == "{":
            key = "%s %s" % (words[1], words[2])
            body = []
            depth = 1
            while i < len(lines):
                text = lines[i].strip()
                i += 1
                if text.endswith("{"):
                    depth += 1
                if text == "}":
                    depth -= 1
                    if depth == 0:
                        break
                if text and not text.startswith("#"):
                    body.append(text)
            else:
                fail("syntax error, unexpected end of file")
            if any("FAKE-SYNTAX-ERROR" in b for b in body):
                fail("syntax error, unexpected junk")
            tables[key] = tables.get(key, []) + body
            continue
        fail("syntax error, unexpected %s" % words[0])
    return tables


def listing(key, body):
    out = ["table %s {" % key]
    depth = 1
    for text in body:
        if text == "}":
            depth -= 1
        out.append("\t" * depth + text)
        if text.endswith("{"):
            depth += 1
    out.append("}")
    return "\n".join(out) + "\n"


def main(argv):
    args = argv[1:]
    stateless = False
    while args and args[0] in ("-s", "-j", "-c"):
        flag = args.pop(0)
        if flag == "-s":
            stateless = True
        elif flag == "-j":
            state = load()
            items = [{"metainfo": {"version": "1.0.6"}}]
            for key in sorted(state["tables"]):
                family, name = key.split()
                items.append({"table": {"family": family, "name": name, "handle": 1}})
            print(json.dumps({"nftables": items}))
            return 0
        elif flag == "-c":
            if args[:1] != ["-f"]:
                fail("-c needs -f")
            if os.environ.get("FAKE_NFT_FAIL_CHECK") and os.environ["FAKE_NFT_FAIL_CHECK"] in args[1]:
                fail("Could not process rule: injected check failure")
            parse(args[1], load()["tables"])
            return 0
    del stateless
    if args == ["--version"]:
        print("nftables v1.0.6 (Lester Gooch #5)")
        return 0
    if args[:1] == ["-f"]:
        if os.environ.get("FAKE_NFT_FAIL_APPLY") and not os.environ.get("FAKE_NFT_SCRATCH"):
            fail("Could not process rule: Operation not permitted (injected)")
        state = load()
        state["tables"] = parse(args[1], state["tables"])
        save(state)
        return 0
    if args == ["list", "tables"]:
        for key in sorted(load()["tables"]):
            print("table %s" % key)
        return 0
    if args[:2] == ["list", "table"] and len(args) == 4:
        key = "%s %s" % (args[2], args[3])
        tables = load()["tables"]
        if key not in tables:
            fail("No such file or directory", 1)
        sys.stdout.write(listing(key, tables[key]))
        return 0
    if args[:2] == ["delete", "table"] and len(args) == 4:
        state = load()
        state["tables"].pop("%s %s" % (args[2], args[3]), None)
        save(state)
        return 0
    fail("fake nft does not know: %s" % " ".join(argv[1:]))
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
