"""lightweight-gan 1.2.1's losses, as its ``Trainer.train`` computes them.

Not registered in ``LOSSES``: a registered loss is either the ``GANLoss`` that drives D, called
``loss(pred, target_is_real, is_disc)``, or a content loss called ``loss(output, gt)``; these take
both batches (or several heads) at once, so a generation task calls them directly.

Sign convention (lightweight-gan's, flipped from the usual hinge): D is trained to push real
logits *below* −1 and fake ones *above* +1, and G to make its fakes' logits small::

    D: mean(relu(1 + D(real))) + mean(relu(1 − D(fake)))        G: mean(D(fake))

lightweight-gan adds ``relu(1 + real) + relu(1 − fake)`` elementwise before the mean; for equal
shapes that is the sum of the two means used here, which also allows unequal batch sizes. Its
*dual contrastive* option (``dual_contrastive_loss``) keeps the usual orientation instead: real
logits high, fake ones low. :data:`REAL_IS_POSITIVE` records which, for ADA's sign heuristic.

Per D step lightweight-gan sums the loss over both heads (the main logits and the 32×32 side
discriminator), adds the reconstruction loss of the real batch and, every 4th step, the gradient
penalty of :func:`gradient_penalty`. Losses are computed in float32 whatever the autocast dtype.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

REAL_IS_POSITIVE = {"hinge": False, "dual_contrastive": True}
GP_WEIGHT = 10.0
GP_INTERVAL = 4  # lightweight-gan: apply_gradient_penalty = steps % 4 == 0


def hinge_d_loss(real: Tensor, fake: Tensor) -> Tensor:
    """lightweight-gan's ``hinge_loss(real, fake)``: ``mean(relu(1 + real)) + mean(relu(1 − fake))``."""
    return F.relu(1 + real.float()).mean() + F.relu(1 - fake.float()).mean()


def hinge_g_loss(fake: Tensor) -> Tensor:
    """lightweight-gan's ``gen_hinge_loss``: ``mean(D(fake))`` (G wants its fakes to look real: low)."""
    return fake.float().mean()


def dual_contrastive_loss(real: Tensor, fake: Tensor) -> Tensor:
    """Yu et al.'s dual contrastive loss as lightweight-gan writes it (logits flattened).

    Each real logit is the positive of a softmax over itself and every fake logit, and each
    negated fake logit is the positive against every negated real logit::

        mean_i[logsumexp(r_i, f_1..f_n) − r_i] + mean_j[logsumexp(−f_j, −r_1..−r_m) + f_j]

    For G, lightweight-gan calls it with the roles swapped: ``dual_contrastive_loss(fake, real)``.
    """
    r, f = real.float().flatten(), fake.float().flatten()

    def half(pos: Tensor, neg: Tensor) -> Tensor:
        logits = torch.cat([pos[:, None], neg[None, :].expand(pos.numel(), -1)], dim=1)
        return (torch.logsumexp(logits, dim=1) - pos).mean()

    return half(r, f) + half(-f, -r)


def discriminator_loss(
    real_heads: Sequence[Tensor], fake_heads: Sequence[Tensor], dual_contrastive: bool = False
) -> Tensor:
    """D's adversarial loss summed over heads (``(logits, logits_32x32)`` in lightweight-gan)."""
    if len(real_heads) != len(fake_heads) or not real_heads:
        raise ValueError(f"discriminator_loss: {len(real_heads)} real heads vs {len(fake_heads)} fake heads")
    fn = dual_contrastive_loss if dual_contrastive else hinge_d_loss
    losses = [fn(r, f) for r, f in zip(real_heads, fake_heads)]
    return torch.stack(losses).sum()


def generator_loss(
    fake_heads: Sequence[Tensor],
    real_heads: Sequence[Tensor] | None = None,
    dual_contrastive: bool = False,
) -> Tensor:
    """G's adversarial loss summed over heads; the dual contrastive form needs D(real) too."""
    if not fake_heads:
        raise ValueError("generator_loss: no discriminator heads given")
    if not dual_contrastive:
        return torch.stack([hinge_g_loss(f) for f in fake_heads]).sum()
    if real_heads is None or len(real_heads) != len(fake_heads):
        raise ValueError("generator_loss: the dual contrastive loss needs one real head per fake head")
    return torch.stack([dual_contrastive_loss(f, r) for f, r in zip(fake_heads, real_heads)]).sum()


def crop_quadrant(images: Tensor, quadrant: int) -> Tensor:
    """Quadrant ``quadrant`` of ``(…, H, W)``: 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right.

    lightweight-gan's ``rearrange(img, 'b c (m h) (n w) -> (m n) b c h w')[q]``, i.e. ``q = 2m + n``.
    """
    if quadrant not in (0, 1, 2, 3):
        raise ValueError(f"quadrant: expected 0..3, got {quadrant!r}")
    h, w = images.shape[-2] // 2, images.shape[-1] // 2
    row, col = divmod(int(quadrant), 2)
    return images[..., row * h : (row + 1) * h, col * w : (col + 1) * w]


def reconstruction_loss(
    images: Tensor,
    recon_whole: Tensor,
    recon_quadrant: Tensor | None = None,
    quadrant: int | None = None,
) -> Tensor:
    """lightweight-gan's self-supervised ``aux_loss`` of D on the real batch.

    ``images`` is what D was fed (the *augmented* real batch: lightweight-gan compares against
    D's own input); ``recon_whole`` the decoder's image from the 8×8 features and
    ``recon_quadrant`` (≥ 512 px) the decoder's image of quadrant ``quadrant`` from the matching
    16×16 features. Each target is the image (or quadrant) resized with ``F.interpolate``'s
    default nearest mode to the reconstruction's size; the loss is the sum of the two MSEs.
    """

    def mse(recon: Tensor, target: Tensor) -> Tensor:
        target = F.interpolate(target, size=recon.shape[-2:])
        return F.mse_loss(recon.float(), target.float())

    loss = mse(recon_whole, images)
    if recon_quadrant is not None:
        if quadrant is None:
            raise ValueError("reconstruction_loss: recon_quadrant given without its quadrant index")
        loss = loss + mse(recon_quadrant, crop_quadrant(images, quadrant))
    return loss


def gradient_penalty(
    outputs: Sequence[Tensor],
    inputs: Sequence[Tensor],
    weight: float = GP_WEIGHT,
    scale: float | Tensor | None = None,
) -> Tensor:
    """lightweight-gan's zero-centred penalty ``weight · mean_n ‖∇_{x_n} Σ D(x)‖²``.

    ``outputs`` are every D head for every batch in ``inputs``, which must require grad; the
    gradient of their sum is taken w.r.t. each input and the per-image squared norms of all
    inputs are averaged together. lightweight-gan 1.2.1 passes the *real batch before
    augmentation* (the gradient runs through :class:`DiffAugment`) and the *fake batch after
    it* (D's input), so both are penalised; with one input this is R1 at weight 10.

    AMP: with a GradScaler, pass ``scale=scaler.get_scale()`` (or the scaler's device tensor, to
    avoid the host read). The gradient is then taken of the outputs times ``scale`` — so small
    fp16 gradients do not flush to zero in the backward — and divided by ``scale`` before
    squaring, i.e. the penalty is computed on unscaled gradients (PyTorch's AMP recipe, and
    StyleGAN2's). When those gradients overflowed the penalty is inf/NaN; add it to D's loss
    anyway: the scaler then skips the step and lowers its scale (lightweight-gan instead drops a
    NaN penalty and steps without it). Expect that on the first fp16 step: GradScaler starts at
    2¹⁶, and the per-element gradient of a sum, 2¹⁶, is already past fp16's 65504. The graph is
    kept so the penalty back-propagates into D.
    """
    total = sum(o.float().sum() for o in outputs)
    if scale is not None:
        total = total * scale
    grads = torch.autograd.grad(outputs=total, inputs=list(inputs), create_graph=True)
    norms = []
    for g in grads:
        g = g.float()
        if scale is not None:
            g = g / scale
        norms.append(g.flatten(1).pow(2).sum(dim=1))
    return weight * torch.cat(norms).mean()
