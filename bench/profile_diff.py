#!/usr/bin/python3
"""Self instructions per transaction by function, from two callgrind files of the same
workload (a short and a long run): (long - short) / TRANSACTIONS, so start-up and logins
cancel out. Prints the top functions and their share of the total.
    bench/profile_diff.py SHORT.out LONG.out TRANSACTIONS [TOP]"""
import subprocess
import sys


def self_costs(path):
    out = subprocess.run(["callgrind_annotate", "--threshold=100", "--inclusive=no", "--tree=none", path],
                         capture_output=True, text=True, check=True).stdout
    costs, in_table = {}, False
    for line in out.splitlines():
        if line.rstrip().endswith("file:function"):
            in_table = True
            continue
        if not in_table or line.startswith("---"):
            continue
        if not line.strip():
            if costs:
                break  # the function table ends; source annotations follow
            continue
        count, _, rest = line.strip().partition(" ")
        name = rest.split(")", 1)[-1].split(" [", 1)[0].strip()
        costs[name] = costs.get(name, 0) + int(count.replace(",", ""))
    return costs


def main():
    short, long_, tx = sys.argv[1], sys.argv[2], int(sys.argv[3])
    top = int(sys.argv[4]) if len(sys.argv) > 4 else 40
    a, b = self_costs(short), self_costs(long_)
    per_tx = {k: (b.get(k, 0) - a.get(k, 0)) / tx for k in set(a) | set(b)}
    total = sum(per_tx.values())
    print(f"{total:10.0f}  total per transaction")
    for name, cost in sorted(per_tx.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{cost:10.0f}  {100 * cost / total:5.1f}%  {name[:150]}")


if __name__ == "__main__":
    main()
