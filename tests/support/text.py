"""Small text helpers the support code shares (no imports: real.py ships them to a subprocess)."""


def split_top_level(text, opens="([{", closes=")]}"):
    """``text`` split at the commas outside any bracket, each part stripped, none empty."""
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch in opens:
            depth += 1
        elif ch in closes:
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out
