#!/usr/bin/env python3
"""PyTorch reference for `npm run bench:distill`: the same knowledge-distillation job as
scripts/bench-distill.ts, on the same synthetic data shapes, printed as one JSON line.

Job: a student MLP (in-16-2 or in-128-128-2), Adam (lr 1e-3), T = 4, alpha = 0.9. Each
step takes `batch` transfer rows with teacher logits and batch/8 labelled own rows, and
minimises alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(own rows). Samples
per second count transfer rows. Teacher inference: an in-256-256-2 MLP in eval mode on all
transfer rows, 4,096 rows per call, rows per second.

Usage: python3 bench/pytorch_kd.py --rows 50000 --features 30 --threads 1
"""
import argparse
import json
import os
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50000)
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--students", default="16;128,128")
    parser.add_argument("--batches", default="256,1024")
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()

    # OpenBLAS must not start its own threads on top of torch's.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    n, d = args.rows, args.features
    x = torch.rand(n, d) * 2 - 1
    teacher_logits = torch.randn(n, 2) * 2
    own_n = 2000
    own_x = torch.rand(own_n, d) * 2 - 1
    own_y = (torch.rand(own_n) < 0.2).long()
    T, alpha = 4.0, 0.9

    def mlp(hidden):
        layers, width = [], d
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, 2))
        return nn.Sequential(*layers)

    results = []
    for spec in args.students.split(";"):
        hidden = [int(w) for w in spec.split(",")]
        for batch in [int(b) for b in args.batches.split(",")]:
            own_batch = max(1, batch // 8)
            model = mlp(hidden)
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            order = torch.randperm(n)
            own_order = torch.randint(0, own_n, (n // batch + args.warmup + 2, own_batch))

            def step(k, start):
                idx = order[start : start + batch]
                xb = torch.cat([x[idx], own_x[own_order[k]]])
                logits = model(xb)
                st = logits[: len(idx)]
                so = logits[len(idx) :]
                kd = F.kl_div(
                    F.log_softmax(st / T, dim=1),
                    F.log_softmax(teacher_logits[idx] / T, dim=1),
                    reduction="batchmean",
                    log_target=True,
                ) * (T * T)
                ce = F.cross_entropy(so, own_y[own_order[k]])
                loss = alpha * kd + (1 - alpha) * ce
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                return loss

            for k in range(args.warmup):
                step(k, (k * batch) % (n - batch))
            steps = 0
            started = time.perf_counter()
            for start in range(0, n, batch):
                loss = step(args.warmup + steps, start)
                steps += 1
            float(loss)
            seconds = time.perf_counter() - started
            results.append(
                {
                    "student": f"{d}-" + "-".join(map(str, hidden)) + "-2",
                    "batch": batch,
                    "steps": steps,
                    "samplesPerSecond": n / seconds,
                    "msPerStep": 1000 * seconds / steps,
                }
            )

    teacher = mlp([256, 256]).eval()
    with torch.no_grad():
        teacher(x[:4096])
        started = time.perf_counter()
        for start in range(0, n, 4096):
            teacher(x[start : start + 4096])
        seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "engine": "pytorch",
                "version": torch.__version__,
                "threads": args.threads,
                "kd": results,
                "teacherInference": {"student": f"{d}-256-256-2", "rowsPerSecond": n / seconds},
            }
        )
    )


if __name__ == "__main__":
    main()
