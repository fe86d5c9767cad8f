"""reportgen.ml.optim: the batch optimisers, on small synthetic problems (no network).

Every problem here is a batch of images (B, 3, H, W) with values in 0..1 and one loss per image.
Most are the separable quadratic f(x) = ½ Σ d·(x − t)² per image, whose minimiser is known
(t, or t clipped to [0, 1] in the box), with curvatures d spread over [1, 30].  What is checked:
L-BFGS converges, its path does not depend on the scale of the loss (unlike torch.optim.LBFGS
without line search, which stalls on small losses), it stays in the box and still finds the
box's minimiser, images in one batch do not influence each other, Adam is torch's Adam, and a
non-convex loss neither blows up nor ends worse than it started.
"""

from __future__ import annotations

import pytest
import torch

from reportgen.ml.optim import PROBE_LEVELS, BatchAdam, BatchLBFGS, make_optimizer

B, H, W = 2, 8, 8
START = 0.5


def quadratic(seed: int = 0, outside: float = 0.0):
    """(d, t): curvatures in [1, 30] and targets in (0.1, 0.9), each (B, 3, H, W) float64.

    ``outside``: the fraction of values whose target is moved out of the box, to 1.5 or -0.5.
    """
    generator = torch.Generator().manual_seed(seed)
    d = 1 + 29 * torch.rand(B, 3, H, W, generator=generator, dtype=torch.float64)
    t = 0.1 + 0.8 * torch.rand(B, 3, H, W, generator=generator, dtype=torch.float64)
    if outside:
        moved = torch.rand(B, 3, H, W, generator=generator) < outside
        high = torch.rand(B, 3, H, W, generator=generator) < 0.5
        t = torch.where(moved, torch.where(high, 1.5, -0.5).double(), t)
    return d, t


def loss_and_gradient(x, d, t, scale=1.0):
    """The quadratic's loss (B,) and gradient (B, 3, H, W) at ``x``, times ``scale``."""
    return scale * (0.5 * d * (x - t) ** 2).sum(dim=(1, 2, 3)), scale * d * (x - t)


def start(batch: int = B, dtype=torch.float64) -> torch.Tensor:
    return torch.full((batch, 3, H, W), START, dtype=dtype)


def lbfgs_path(d, t, steps, scale=1.0, lr=None, bounded=True):
    """The iterates (a list of (B, 3, H, W)) of BatchLBFGS on the quadratic, from mid-grey."""
    x = start(d.shape[0])
    optimizer = BatchLBFGS(x, torch.ones(d.shape[0]) if lr is None else lr, bounded)
    path = []
    for _ in range(steps):
        loss, gradient = loss_and_gradient(x, d, t, scale)
        optimizer.step(gradient, loss)
        path.append(x.clone())
    return path


# --- L-BFGS on a convex quadratic -------------------------------------------------------------


def test_lbfgs_reaches_the_minimiser_of_a_quadratic():
    """Thirty gradient evaluations bring every value within 1e-3 of its target."""
    d, t = quadratic()
    x = lbfgs_path(d, t, 30)[-1]
    assert (x - t).abs().max() < 1e-3


@pytest.mark.parametrize("scale", [1e-9, 1e6])
def test_lbfgs_path_does_not_depend_on_the_scale_of_the_loss(scale):
    """The regression test: f and c·f give the same iterates, step by step, even for c = 1e-9.

    (The gradient is rounded to float32 inside the optimiser, so the paths agree to rounding,
    not bit for bit.)
    """
    d, t = quadratic()
    reference = lbfgs_path(d, t, 15)
    scaled = lbfgs_path(d, t, 15, scale=scale)
    for step, (mine, theirs) in enumerate(zip(scaled, reference, strict=True)):
        relative = (mine - theirs).norm() / (theirs - START).norm()
        assert relative < 2e-5, (step, float(relative))
    # And the path is a real one: the loss has fallen 10,000-fold.
    assert (
        loss_and_gradient(scaled[-1], d, t)[0] < 1e-4 * loss_and_gradient(start(), d, t)[0]
    ).all()


def test_lbfgs_path_is_identical_under_power_of_two_scaling():
    """Scaling the loss by 2^-30 or 2^20 changes no rounding, so the iterates are bit-identical."""
    d, t = quadratic()
    reference = lbfgs_path(d, t, 15)
    for scale in (2.0**-30, 2.0**20):
        for mine, theirs in zip(lbfgs_path(d, t, 15, scale=scale), reference, strict=True):
            assert torch.equal(mine, theirs)


def test_torch_lbfgs_without_line_search_stalls_on_a_small_loss_where_batch_lbfgs_does_not():
    """The bug being fixed: torch.optim.LBFGS(lr=1, max_iter=1) on 1e-9·f does not move."""
    d, t = quadratic()
    d, t = d[:1], t[:1]
    scale = 1e-9
    image = start(1).requires_grad_(True)
    optimizer = torch.optim.LBFGS([image], lr=1, max_iter=1)

    def closure():
        optimizer.zero_grad()
        loss = loss_and_gradient(image, d, t, scale)[0].sum()
        loss.backward()
        return loss

    for _ in range(30):
        optimizer.step(closure)
    assert (image.detach() - START).abs().max() < 1e-6  # not a thousandth of a grey level

    ours = lbfgs_path(d, t, 30, scale=scale)[-1]
    assert (ours - t).abs().max() < 1e-3


def test_lbfgs_first_step_is_a_probe_of_one_grey_level_whatever_the_gradient_scale():
    """The first move is steepest descent with an RMS change of PROBE_LEVELS / 255 per image."""
    d, t = quadratic()
    for scale in (1e-9, 1.0, 1e6):
        x = start(dtype=torch.float32)
        optimizer = BatchLBFGS(x, torch.ones(B))
        loss, gradient = loss_and_gradient(x.double(), d, t, scale)
        optimizer.step(gradient.float(), loss.float())
        move = (x - START).double()
        rms = move.pow(2).mean(dim=(1, 2, 3)).sqrt()
        assert torch.allclose(
            rms, torch.full((B,), PROBE_LEVELS / 255, dtype=torch.float64), rtol=1e-4
        ), scale
        # Along -g: the move is a negative multiple of the gradient, image by image.
        for i in range(B):
            cosine = torch.nn.functional.cosine_similarity(
                move[i].flatten(), -gradient[i].flatten(), dim=0
            )
            assert cosine > 1 - 1e-6, (scale, i)


# --- the box [0, 1] -----------------------------------------------------------------------------


def test_lbfgs_stays_in_the_box_and_finds_its_minimiser():
    """With a quarter of the targets at 1.5 or -0.5, every iterate is in [0, 1]; those values end
    on the bound and the others at their targets (the box's minimiser is t clipped)."""
    d, t = quadratic(seed=1, outside=0.25)
    outside = (t < 0) | (t > 1)
    assert outside.any() and (~outside).any()
    path = lbfgs_path(d, t, 40)
    for x in path:
        assert x.min() >= 0 and x.max() <= 1
    final = path[-1]
    assert torch.equal(final[outside], t.clamp(0, 1)[outside])
    assert (final - t)[~outside].abs().max() < 1e-4


def test_unbounded_lbfgs_leaves_the_box_for_targets_outside_it():
    """bounded=False does not project: the values with targets outside [0, 1] go there."""
    d, t = quadratic(seed=1, outside=0.25)
    final = lbfgs_path(d, t, 40, bounded=False)[-1]
    assert final.min() < -0.49 and final.max() > 1.49
    assert (final - t).abs().max() < 1e-4


def test_adam_stays_in_the_box():
    """bounded=True clips every Adam step to [0, 1]; targets beyond it pin the values to the
    bound."""
    d, t = quadratic(seed=1, outside=0.25)
    outside = (t < 0) | (t > 1)
    x = start()
    optimizer = BatchAdam(x, torch.full((B,), 0.05))
    for _ in range(60):
        optimizer.step(loss_and_gradient(x, d, t)[1])
        assert x.min() >= 0 and x.max() <= 1
    assert torch.equal(x[outside], t.clamp(0, 1)[outside])


# --- one batch, independent images ---------------------------------------------------------------


@pytest.mark.parametrize(
    "make, lr",
    [(BatchLBFGS, torch.tensor([1.0, 0.5])), (BatchAdam, torch.tensor([0.01, 0.03]))],
    ids=["lbfgs", "adam"],
)
def test_images_in_a_batch_follow_the_same_path_as_alone(make, lr):
    """Two images with their own curvatures, targets (some outside the box) and lr: batched, each
    follows exactly the iterates it follows optimised on its own."""
    d, t = quadratic(seed=3)
    t[1, 0, :2] = 1.4
    batch = start()
    together = make(batch, lr)
    alone = [start(1) for _ in range(B)]
    separate = [make(alone[i], lr[i : i + 1]) for i in range(B)]
    for _ in range(30):
        loss, gradient = loss_and_gradient(batch, d, t)
        together.step(gradient, loss)
        for i in range(B):
            loss, gradient = loss_and_gradient(alone[i], d[i : i + 1], t[i : i + 1])
            separate[i].step(gradient, loss)
            assert torch.allclose(batch[i], alone[i][0], rtol=0, atol=1e-9)
    # The two images did take different paths (different lr and problems).
    assert not torch.allclose(batch[0], batch[1], atol=1e-3)


# --- Adam is torch's Adam ------------------------------------------------------------------------


def test_unbounded_adam_matches_torch_adam_step_for_step():
    """Same lr, betas and eps, each fed the gradient at its own iterate: the paths agree to 1e-6."""
    d, t = quadratic(seed=2)
    x = start()
    ours = BatchAdam(x, torch.full((B,), 0.02), bounded=False, betas=(0.8, 0.99), eps=1e-6)
    reference = start().requires_grad_(True)
    theirs = torch.optim.Adam([reference], lr=0.02, betas=(0.8, 0.99), eps=1e-6)
    for step in range(50):
        ours.step(loss_and_gradient(x, d, t)[1])
        theirs.zero_grad()
        reference.grad = loss_and_gradient(reference.detach(), d, t)[1]
        theirs.step()
        assert torch.allclose(x, reference.detach(), rtol=0, atol=1e-6), step
    assert (x - START).abs().max() > 0.1  # it did move


# --- safeguards: a loss that rises, a non-convex loss ---------------------------------------------


def test_lbfgs_goes_halfway_back_after_a_step_that_raised_the_loss():
    """A quasi-Newton step reported worse than the last accepted point is not kept: the next
    point is halfway back to the accepted point, and ``best`` stays at the accepted point."""
    d, t = quadratic()
    x = start()
    optimizer = BatchLBFGS(x, torch.ones(B))
    for _ in range(2):  # the probe, then a first quasi-Newton step
        loss, gradient = loss_and_gradient(x, d, t)
        accepted = x.clone()
        optimizer.step(gradient, loss)
    assert (optimizer.gamma > 0).all()  # curvature is known: the last step was quasi-Newton
    rejected = x.clone()
    claimed, gradient = loss_and_gradient(x, d, t)
    claimed[0] = loss[0] + 1  # image 0 is told the step raised its loss; image 1 is told the truth
    optimizer.step(gradient, claimed)
    assert torch.allclose(x[0], 0.5 * (accepted[0] + rejected[0]), rtol=0, atol=1e-12)
    assert torch.equal(optimizer.best[0], accepted[0])
    # Image 1 accepted its step and moved on from it.
    assert torch.equal(optimizer.best[1], rejected[1])
    assert not torch.allclose(x[1], rejected[1], atol=1e-6)


def test_lbfgs_makes_progress_when_its_first_probe_overshoots():
    """Started a quarter of a grey level from the minimiser, the one-level probe overshoots and
    raises the loss; the optimiser should still back off and lower the loss below its start."""
    d, t = quadratic()
    noise = torch.randn(t.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    x = t + 1e-3 * noise
    initial = loss_and_gradient(x, d, t)[0]
    optimizer = BatchLBFGS(x, torch.ones(B))
    points = set()
    for _ in range(30):
        loss, gradient = loss_and_gradient(x, d, t)
        optimizer.step(gradient, loss)
        points.add(x.numpy().tobytes())
    assert len(points) > 2, "the images stopped moving"
    assert (loss_and_gradient(optimizer.best, d, t)[0] < 0.5 * initial).all()


@pytest.mark.parametrize("bounded", [True, False], ids=["bounded", "unbounded"])
def test_lbfgs_on_a_non_convex_loss_stays_finite_and_descends(bounded):
    """f = Σ a·sin(w·x + φ) with several periods per value: full quasi-Newton steps overshoot and
    meet negative curvature, yet every value stays finite (and in the box when bounded), the
    best loss never rises, and it ends much lower than it started."""
    generator = torch.Generator().manual_seed(0)
    a = 0.5 + 0.5 * torch.rand(B, 3, H, W, generator=generator, dtype=torch.float64)
    w = 5 + 10 * torch.rand(B, 3, H, W, generator=generator, dtype=torch.float64)
    phase = 6.28 * torch.rand(B, 3, H, W, generator=generator, dtype=torch.float64)

    def loss(x):
        return (a * torch.sin(w * x + phase)).sum(dim=(1, 2, 3))

    lowest_possible = -a.sum(dim=(1, 2, 3))
    x = start()
    initial = loss(x)
    optimizer = BatchLBFGS(x, torch.ones(B), bounded)
    best = initial
    for _ in range(60):
        optimizer.step(a * w * torch.cos(w * x + phase), loss(x))
        assert torch.isfinite(x).all()
        if bounded:
            assert x.min() >= 0 and x.max() <= 1
        now = loss(optimizer.best)
        assert (now <= best + 1e-4 * best.abs()).all()  # the optimiser compares losses in float32
        best = torch.minimum(best, now)
    # At least half of the way from the start to the lowest value the loss could take.
    assert (best < initial - 0.5 * (initial - lowest_possible)).all(), (
        initial,
        best,
        lowest_possible,
    )


# --- make_optimizer ------------------------------------------------------------------------------


def test_make_optimizer_names():
    """'lbfgs' and 'adam' give the batch optimisers, with the bound flag passed on; others raise."""
    images, lr = start(), torch.ones(B)
    lbfgs = make_optimizer("lbfgs", images, lr)
    adam = make_optimizer("adam", images, lr, bounded=False)
    assert isinstance(lbfgs, BatchLBFGS) and lbfgs.bounded and lbfgs.images is images
    assert isinstance(adam, BatchAdam) and not adam.bounded and adam.images is images
    with pytest.raises(ValueError, match="sgd"):
        make_optimizer("sgd", images, lr)
