# %% [markdown]
# # Lesson 01 — Tensors and autograd from scratch
#
# Every network in minicnn learns by gradient descent, and every gradient comes from one small
# engine: `minicnn/autograd.py` (`Tensor`, `Function`, the backward loop) plus the operations in
# `minicnn/functional/`. This lesson takes the engine apart:
#
# 1. **A graph by hand** — a tiny expression, its derivatives worked out with the chain rule.
# 2. **The same by the engine** — `Tensor(..., requires_grad=True)`, `loss.backward()`, `.grad`.
# 3. **Why a topological order** — a diamond-shaped graph, the order minicnn visits it in, and the
#    wrong answer a wrong order gives.
# 4. **Gradient accumulation and `zero_grad`** — why `.grad` adds up, and when that is useful.
# 5. **Gradient checking** with `minicnn.gradcheck` — and a planted bug it catches.
#
# Run it as a script (`python lessons/01_autograd.py`, add `--quick` for the test-suite run) or open
# it as a notebook with jupytext. Every cell is fast, so `--quick` changes nothing here.

# %%
import inspect
import sys
from pathlib import Path

# The lessons use the minicnn next to them (no installation needed): the repository root goes on
# the import path. In a notebook, __file__ is unknown and the working directory is lessons/.
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
sys.path[:0] = [str(HERE), str(HERE.parent)]

from _lesson import savefig, setup  # noqa: E402

args = setup("Lesson 01: tensors and autograd from scratch")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import minicnn  # noqa: E402
import minicnn.autograd  # noqa: E402
import minicnn.functional as F  # noqa: E402
from minicnn import Function, Tensor  # noqa: E402
from minicnn.gradcheck import GradcheckError, gradcheck, numerical_grad  # noqa: E402


def show(obj):
    """Print the source of a minicnn class or function, the way you would read it in the file."""
    print(f"# {obj.__module__}.{obj.__qualname__}")
    print(inspect.getsource(obj))


# %% [markdown]
# ## 1. A graph by hand
#
# One neuron with a squared error: input x, weight w, bias b, target t,
#
#     u = w·x        s = u + b        r = s − t        L = r²
#
# Each line is a node of a **computation graph**. The chain rule walks it backwards: start from
# dL/dL = 1 and multiply by one *local* derivative per edge.
#
#     dL/dr = 2r
#     dL/ds = dL/dr · 1          dL/dt = dL/dr · (−1)
#     dL/du = dL/ds · 1          dL/db = dL/ds · 1
#     dL/dw = dL/du · x          dL/dx = dL/du · w

# %%
w, x, b, t = -2.0, 1.5, 1.0, 0.5
u = w * x
s = u + b
r = s - t
L = r * r
print(f"forward:  u = {u}, s = {s}, r = {r}, L = {L}")

dL_dr = 2 * r
dL_ds, dL_dt = dL_dr * 1, dL_dr * -1
dL_du, dL_db = dL_ds * 1, dL_ds * 1
dL_dw, dL_dx = dL_du * x, dL_du * w
by_hand = {"w": dL_dw, "x": dL_dx, "b": dL_db, "t": dL_dt}
print("backward by hand:", by_hand)

# %% [markdown]
# ## 2. The same by the engine
#
# A `Tensor` wraps a NumPy array. An operation on tensors is a `Function` whose `forward` and
# `backward` sit side by side, both on raw arrays; calling it records the graph (each output
# remembers its `creator`). Here is multiplication, from `minicnn/functional/math.py`:

# %%
show(minicnn.functional.math.Mul)

# %% [markdown]
# `Function.__call__` runs `forward` and links the output to its inputs. `Tensor.backward()` hands
# the graph to `run_backward`, which visits the functions in reverse topological order and calls
# each `backward` with the gradient of its output:

# %%
show(minicnn.autograd.run_backward)

# %% [markdown]
# Leaves are created with `requires_grad=True`; we use float64 so that the numbers match the
# hand computation to the last digit (the library's default is float32).

# %%
leaves = {name: Tensor(value, requires_grad=True, dtype=np.float64)
          for name, value in (("w", w), ("x", x), ("b", b), ("t", t))}
tw, tx, tb, tt = leaves.values()
tu = tw * tx
ts = tu + tb
tr = ts - tt
tL = tr * tr
tL.backward()
for name, leaf in leaves.items():
    engine = leaf.grad.item()
    print(f"dL/d{name}: by hand {by_hand[name]:+.4f}   by the engine {engine:+.4f}")
    assert engine == by_hand[name]
print("the graph minicnn recorded, from the loss back:",
      [tL.creator.name, tr.creator.name, ts.creator.name, tu.creator.name])

# %% [markdown]
# The figure draws this graph: values (forward, left to right) in each node and gradients
# (backward, right to left) under them.

# %%
def draw_graph(ax, nodes, edges, title):
    """nodes: name -> (x, y, text); edges: (from, to) pairs, drawn as arrows between the boxes."""
    boxes = {name: ax.text(xn, yn, text, ha="center", va="center", fontsize=8.5,
                           bbox=dict(boxstyle="round,pad=0.4", fc="#eef3fb", ec="#3b6ea8"))
             for name, (xn, yn, text) in nodes.items()}
    for a, c in edges:       # arrows clipped to the boxes' outlines
        ax.annotate("", xy=nodes[c][:2], xytext=nodes[a][:2],
                    arrowprops=dict(arrowstyle="-|>", color="0.4", shrinkA=2, shrinkB=2,
                                    patchA=boxes[a].get_bbox_patch(), patchB=boxes[c].get_bbox_patch()))
    xs, ys = [n[0] for n in nodes.values()], [n[1] for n in nodes.values()]
    ax.set_xlim(min(xs) - 0.6, max(xs) + 0.6)
    ax.set_ylim(min(ys) - 0.6, max(ys) + 0.6)
    ax.set_title(title, fontsize=10)
    ax.axis("off")


def label(name, tensor, op=""):
    grad = "" if tensor.grad is None else f"\ngrad {tensor.grad.item():+g}"
    return f"{op}{name} = {tensor.item():g}{grad}"


# Intermediate tensors keep no .grad (only leaves do); write them in from the hand computation.
inner = {"u": dL_du, "s": dL_ds, "r": dL_dr, "L": 1.0}
neuron_nodes = {
    "w": (0, 2.2, label("w", tw)), "x": (0, 1.0, label("x", tx)),
    "b": (1.5, 0.2, label("b", tb)), "t": (3, -0.5, label("t", tt)),
    "u": (1.5, 1.6, f"u = w·x = {u:g}\ngrad {inner['u']:+g}"),
    "s": (3, 0.9, f"s = u + b = {s:g}\ngrad {inner['s']:+g}"),
    "r": (4.5, 0.2, f"r = s − t = {r:g}\ngrad {inner['r']:+g}"),
    "L": (6, 0.2, f"L = r² = {L:g}\ngrad 1"),
}
neuron_edges = [("w", "u"), ("x", "u"), ("u", "s"), ("b", "s"), ("s", "r"), ("t", "r"), ("r", "L")]

# %% [markdown]
# ## 3. Why a topological order
#
# In a chain, "go backwards" is unambiguous. In a general graph a value can feed several
# operations, and its gradient is the **sum** of what flows back along every path. A node may only
# pass its gradient on once *all* the operations that consumed it have sent theirs — which is
# exactly the reverse of a topological order (every node after all of its inputs).
#
# A diamond: h feeds both u and v, which meet again in z.
#
#     h = x·x      u = h + 1      v = 3·h      z = u·v          dz/dx = 12x³ + 6x
#
# minicnn finds the order with an explicit stack — no recursion, so a graph 10,000 operations
# deep is fine (Python's recursion limit is about 1,000 frames):

# %%
show(minicnn.autograd._topological_order)

# %%
dx = Tensor(2.0, requires_grad=True, dtype=np.float64)
dh = dx * dx
du = dh + 1
dv = dh * 3
dz = du * dv
names = {dh.creator: "h = x·x", du.creator: "u = h + 1", dv.creator: "v = 3·h", dz.creator: "z = u·v"}
order = minicnn.autograd._topological_order(dz.creator)
visit = list(reversed(order))
print("backward visits:", "  →  ".join(names[f] for f in visit))
dz.backward(retain_graph=True)
exact = 12 * 2.0 ** 3 + 6 * 2.0
print(f"dz/dx by the engine = {dx.grad.item():g},   12x³ + 6x at x = 2 is {exact:g}")
assert dx.grad.item() == exact


# %% [markdown]
# What goes wrong in another order? The loop below is `run_backward` stripped to its core: it
# calls each function's `backward` once, in the order given, and adds what comes out into the
# gradients of the inputs. Give it an order in which `h = x·x` runs before `v = 3·h` has sent its
# share, and h passes on an incomplete gradient:

# %%
def backward_in_order(functions, root_function, leaf):
    """Chain rule over `functions` in the given order; returns d(root)/d(leaf)."""
    grads = {id(root_function): np.ones(())}         # gradient of each function's output
    leaf_grad = np.zeros(())
    for f in functions:
        gy = grads.pop(id(f), np.zeros(()))          # whatever has arrived so far
        for x_in, gx in zip(f.inputs, f.backward(gy)):
            if x_in is leaf:
                leaf_grad = leaf_grad + gx
            elif x_in.creator is not None:
                grads[id(x_in.creator)] = grads.get(id(x_in.creator), 0) + gx
    return float(leaf_grad)


right = backward_in_order(visit, dz.creator, dx)
wrong_order = [dz.creator, du.creator, dh.creator, dv.creator]
wrong = backward_in_order(wrong_order, dz.creator, dx)
print("reverse topological order:", "  →  ".join(names[f] for f in visit), f"   dz/dx = {right:g}")
print("h before v:               ", "  →  ".join(names[f] for f in wrong_order), f"   dz/dx = {wrong:g}")
assert right == exact and wrong != exact

# %% [markdown]
# The wrong order loses the path through v: dz/dh should be v·1 + u·3 = 12 + 15 = 27, but h used
# only the 12 that had arrived, so dz/dx came out 12·2x = 48 instead of 27·2x = 108.
#
# And depth: a chain of 10,000 additions backpropagates without trouble, while a recursive
# version of the same topological sort hits Python's recursion limit.

# %%
def recursive_order(f, seen, order):
    """The textbook recursive topological sort (what minicnn does NOT do)."""
    if id(f) in seen:
        return
    seen.add(id(f))
    for x_in in f.inputs:
        if x_in.creator is not None:
            recursive_order(x_in.creator, seen, order)
    order.append(f)


deep_leaf = Tensor(0.0, requires_grad=True, dtype=np.float64)
deep = deep_leaf
for _ in range(10_000):
    deep = deep + 1.0
try:
    recursive_order(deep.creator, set(), [])
    print("recursive sort: fine")
except RecursionError as error:
    print(f"recursive sort over 10,000 operations: RecursionError ({error})")
deep.backward()
print(f"minicnn's iterative backward: d(x + 1 + … + 1)/dx = {deep_leaf.grad.item():g}")

# %% [markdown]
# ## 4. Gradient accumulation and `zero_grad`
#
# Leaves **add** every backward pass into `.grad` (PyTorch's rule, stated in the docstring of
# `minicnn/autograd.py`). Two consequences:
#
# * forget to clear `.grad` between training steps and each step uses the sum of all past
#   gradients — hence `tensor.zero_grad()` (and `optimizer.zero_grad()` in lesson 02);
# * on purpose, it lets a big batch be processed in pieces: backward on each piece adds up to
#   the gradient of the whole.
#
# After a backward pass the graph's saved arrays are freed; a second backward through the same
# graph needs `retain_graph=True` on the first.

# %%
p = Tensor(3.0, requires_grad=True, dtype=np.float64)
q = p * p                                     # dq/dp = 2p = 6
q.backward(retain_graph=True)
print("after one backward:   p.grad =", p.grad.item())
q.backward()
print("after two backwards:  p.grad =", p.grad.item(), " (6 + 6: accumulated)")
p.zero_grad()
print("after zero_grad:      p.grad =", p.grad)
try:
    q.backward()
except RuntimeError as error:
    print("a third backward on the freed graph:", str(error)[:90], "…")

# %%
rng = np.random.default_rng(0)
data = rng.standard_normal(8)
weight = Tensor(0.5, requires_grad=True, dtype=np.float64)
((weight * data - 1.0) ** 2).sum().backward()          # the whole batch at once
whole = weight.grad.item()
weight.zero_grad()
for half in (data[:4], data[4:]):                      # two halves, gradients accumulated
    ((weight * half - 1.0) ** 2).sum().backward()
print(f"gradient of the whole batch {whole:.12f}, two halves accumulated {weight.grad.item():.12f}")
assert np.isclose(whole, weight.grad.item(), rtol=1e-12)

# %% [markdown]
# ## 5. Gradient checking
#
# A hand-written `backward` is the one place in minicnn where a silent mistake is easy: the
# network still trains, only worse. `minicnn.gradcheck` compares every analytic gradient with a
# central finite difference, (L(θ + h) − L(θ − h)) / 2h, in float64, where
# L = Σ fn(inputs) · G for a fixed **random** upstream gradient G:

# %%
print(minicnn.gradcheck.__doc__)

# %% [markdown]
# A small expression built from the operations of this lesson (it is the log-sum-exp of
# lesson 02), checked with respect to both of its inputs:

# %%
xs = rng.standard_normal((4, 3))
Ws = rng.standard_normal((3, 5))
print(gradcheck(lambda a, c: (a @ c).exp().sum(axis=1).log(), [xs, Ws]))

# %% [markdown]
# **A planted bug.** Softplus, y = log(1 + eˣ), has derivative σ(x) = 1 / (1 + e⁻ˣ). Below is a
# `Function` whose backward returns that local derivative but forgets to multiply it by the
# upstream gradient gy — the most common autograd bug there is.

# %%
class BuggySoftplus(Function):
    """y = log(1 + e^x); the backward 'forgets' the upstream gradient gy."""

    def forward(self, x):
        self.x = x
        return np.logaddexp(0, x)                  # log(1 + e^x) without overflow

    def backward(self, gy):
        return 1 / (1 + np.exp(-self.x))           # BUG: should be gy * sigmoid(x)


class Softplus(BuggySoftplus):
    """The same forward, the correct backward: gx = gy · σ(x)."""

    def backward(self, gy):
        return gy / (1 + np.exp(-self.x))


# %% [markdown]
# A check with an all-ones upstream gradient — i.e. differentiating `y.sum()`, the classic test —
# cannot see this bug: with gy = 1, "gy · σ(x)" and "σ(x)" are the same numbers.

# %%
z0 = rng.standard_normal(6)
ones = [np.ones(6)]
z_tensor = Tensor(z0.copy(), requires_grad=True)
BuggySoftplus()(z_tensor).sum().backward()
numeric = numerical_grad(lambda a: BuggySoftplus()(a), [z_tensor], ones, z_tensor)
print("all-ones check on the buggy backward, max |analytic − numerical| =",
      f"{np.abs(z_tensor.grad.data - numeric).max():.2e}  (looks perfect)")

# %%
results = {}
for fn in (BuggySoftplus, Softplus):
    try:
        results[fn.__name__] = gradcheck(lambda a, fn=fn: fn()(a), [z0.copy()])
    except GradcheckError as error:
        print(f"{fn.__name__}: GradcheckError:", error)
        results[fn.__name__] = gradcheck(lambda a, fn=fn: fn()(a), [z0.copy()], raise_exception=False)
    else:
        print(f"{fn.__name__}:", results[fn.__name__])
assert not results["BuggySoftplus"].ok and results["Softplus"].ok
print(f"relative error: buggy {results['BuggySoftplus'].relative_error:.2g}, "
      f"fixed {results['Softplus'].relative_error:.2g}")

# %% [markdown]
# The figure puts the numbers side by side: for each of the six inputs, the analytic gradient
# against the finite difference, under the same random upstream gradient G that `gradcheck` uses.
# The correct backward lies on the diagonal; the buggy one does not.

# %%
G = np.random.default_rng(0).standard_normal(6)   # gradcheck(seed=0)'s upstream gradient
points = {}
for fn in (BuggySoftplus, Softplus):
    z_t = Tensor(z0.copy(), requires_grad=True)
    fn()(z_t).backward(G)
    points[fn.__name__] = (numerical_grad(lambda a, fn=fn: fn()(a), [z_t], [G], z_t), z_t.grad.data)

fig, (ax_neuron, ax_diamond, ax) = plt.subplots(1, 3, figsize=(15, 4.6),
                                               gridspec_kw=dict(width_ratios=[1.5, 1.1, 1]))
draw_graph(ax_neuron, neuron_nodes, neuron_edges, "§1–2: L = (w·x + b − t)², values and gradients")
diamond_nodes = {
    "x": (0, 0, f"x = 2\ngrad {dx.grad.item():g}"),
    "h": (1, 0, f"h = x·x\nvisit {visit.index(dh.creator) + 1}"),
    "u": (2, 0.8, f"u = h + 1\nvisit {visit.index(du.creator) + 1}"),
    "v": (2, -0.8, f"v = 3·h\nvisit {visit.index(dv.creator) + 1}"),
    "z": (3, 0, f"z = u·v\nvisit {visit.index(dz.creator) + 1}"),
}
draw_graph(ax_diamond, diamond_nodes, [("x", "h"), ("h", "u"), ("h", "v"), ("u", "z"), ("v", "z")],
           f"§3: a diamond, minicnn's backward order\n(right order: dz/dx = {right:g}; "
           f"h before v: {wrong:g})")
for (name, (numeric, analytic)), marker in zip(points.items(), ("x", "o")):
    ax.scatter(numeric, analytic, marker=marker, s=45, label=f"{name}", zorder=3)
lim = np.abs(np.concatenate([np.concatenate(v) for v in points.values()])).max() * 1.15
ax.plot([-lim, lim], [-lim, lim], color="0.6", lw=1, label="analytic = numerical")
ax.set(xlabel="numerical gradient (central difference)", ylabel="analytic gradient (backward)",
       title="§5: gradcheck with a random upstream G")
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
fig.tight_layout()
savefig(fig, args, "01_autograd")
plt.close(fig)

# %% [markdown]
# ## Summary
#
# * A `Function` is a forward and a backward on arrays, side by side; `Tensor` records which
#   function made it, and `backward()` applies the chain rule over the recorded graph.
# * The visiting order is the reverse of a topological order, found iteratively: in the diamond,
#   z → u → v → h, which gives dz/dx = 108; running h before v gives 48.
# * `.grad` accumulates: call `zero_grad()` between steps, or use the accumulation on purpose to
#   split a batch (the two halves gave the whole batch's gradient to 12 digits).
# * `gradcheck` compares against finite differences with a **random** upstream gradient: the
#   forgotten-gy bug passes an all-ones check (difference ~1e-10) and fails gradcheck with a
#   relative error of order 1, while the fixed backward agrees to ~1e-10.
#
# Next, lesson 02 uses this engine to train a linear classifier with softmax cross-entropy.
