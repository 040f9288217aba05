"""Captures one SmolLM2 layer, compares three prefill methods' recall and density on it, and
plots recall against density (matplotlib, when installed).

    python examples/compare_methods.py [TEXT_FILE] [--layer 15] [--plot methods.png]
"""

import argparse

import longsparse

METHODS = ["streaming", "vertical-slash", "flexprefill:gamma=0.94"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("text", nargs="?", help="a text file (default: a built-in paragraph, repeated)")
    parser.add_argument("--layer", type=int, default=15)
    parser.add_argument("--plot", default="methods.png")
    args = parser.parse_args()
    text = open(args.text).read() if args.text else " ".join(
        f"Entry {i}: the tide rose {i % 9 + 1} feet at the harbour and the ferry left at {i % 12 + 1} o'clock."
        for i in range(200))

    model = longsparse.Model("smollm2")
    tokens = len(model.tokenize(text))
    if tokens > model.config["context_length"]:
        text = model.detokenize(model.tokenize(text)[: model.config["context_length"]])
    layer = model.capture(text, [args.layer])[args.layer]
    q, k, v = layer["q"], layer["k"], layer["v"]
    print(f"layer {args.layer}: {q.shape[1]} tokens, {q.shape[0]} heads, {k.shape[0]} KV heads")
    rows = []
    for spec in METHODS:
        plan = longsparse.Method(spec).plan(q, k, v, layer=args.layer, window=layer["window"], scale=layer["scale"])
        quality = plan.quality(q, k, v)
        rows.append((spec, plan.density, quality["recall"], quality["rel_err"]))
        print(f"{spec:28s} density {plan.density:.3f}  recall {quality['recall']:.4f}  rel_err {quality['rel_err']:.4f}")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot")
        return
    fig, ax = plt.subplots(figsize=(5, 4))
    for spec, density, recall, _ in rows:
        ax.scatter(density, recall)
        ax.annotate(spec.split(":")[0], (density, recall), textcoords="offset points", xytext=(4, 4))
    ax.set_xlabel("density (computed / causal pairs)")
    ax.set_ylabel("recall (attention mass kept)")
    ax.set_title(f"SmolLM2 layer {args.layer}, {q.shape[1]} tokens")
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)
    print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
