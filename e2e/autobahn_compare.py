"""Compares two agents of an Autobahn|Testsuite fuzzing-client report, case by case.

    python autobahn_compare.py REPORT_DIR/index.json DIRECT PROXIED

A case passes when its behavior is OK, NON-STRICT or INFORMATIONAL and its close behavior OK or
INFORMATIONAL. Every case that passes for DIRECT must pass for PROXIED. Prints the counts of each,
every difference, and exits 1 if a case that passes direct does not pass through the proxy.
"""

import json
import sys
from collections import Counter

PASS = {"OK", "NON-STRICT", "INFORMATIONAL"}
PASS_CLOSE = {"OK", "INFORMATIONAL"}


def passes(r):
    return r["behavior"] in PASS and r["behaviorClose"] in PASS_CLOSE


def key(case):
    return [int(p) for p in case.split(".")]


def main():
    path, direct, proxied = sys.argv[1:4]
    report = json.load(open(path))
    d, p = report.get(direct, {}), report.get(proxied, {})
    for name, agent in ((direct, d), (proxied, p)):
        counts = Counter(r["behavior"] for r in agent.values())
        ok = sum(passes(r) for r in agent.values())
        summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        print(f"{name}: {len(agent)} cases, {ok} pass ({summary})")
    regressions, other = [], []
    for case in sorted(d, key=key):
        a, b = d[case], p.get(case)
        if b is None:
            regressions.append(f"{case}: not run through the proxy")
            continue
        line = (
            f"{case}: direct {a['behavior']}/{a['behaviorClose']} ({a.get('remoteCloseCode')}), "
            f"proxied {b['behavior']}/{b['behaviorClose']} ({b.get('remoteCloseCode')})"
        )
        if passes(a) and not passes(b):
            regressions.append(line)
        elif (a["behavior"], a["behaviorClose"]) != (b["behavior"], b["behaviorClose"]):
            other.append(line)
    for line in other:
        print(f"  differs (not a regression): {line}")
    for line in regressions:
        print(f"  REGRESSION {line}")
    same = len(d) - len(regressions) - len(other)
    print(f"{same} of {len(d)} cases identical; {len(regressions)} regressions")
    sys.exit(1 if regressions or not d else 0)


if __name__ == "__main__":
    main()
