"""Adversarial losses with BasicSR's names and numbers, plus the relativistic (ESRGAN) form.

``GANLoss(gan_type, real_label_val, fake_label_val, loss_weight)`` is called as
``loss(pred, target_is_real, is_disc)`` on raw discriminator outputs (logits), exactly like
BasicSR's ``GANLoss``, so a ported config trains with the same loss values:

=================  ==========================================  ===============================
``gan_type``       discriminator (``is_disc=True``)              generator (``is_disc=False``)
=================  ==========================================  ===============================
``vanilla``        BCE-with-logits against the label value       same, times ``loss_weight``
``lsgan``          MSE against the label value                   same, times ``loss_weight``
``wgan``           ``-mean(pred)`` real, ``mean(pred)`` fake      same, times ``loss_weight``
``wgan_softplus``  ``softplus(-pred)`` real, ``softplus(pred)``   same, times ``loss_weight``
``hinge``          ``mean(relu(1 - pred))`` real, ``relu(1+pred)`` ``-mean(pred)`` (labels unused)
``ragan``          BCE-with-logits, like ``vanilla``              same, times ``loss_weight``
=================  ==========================================  ===============================

``loss_weight`` only scales the generator's loss; the discriminator's is never weighted (as in
BasicSR). ``ragan`` is ESRGAN's relativistic average GAN: the *loss* is the vanilla one, what
changes is what it is applied to — ``D(real) - mean(D(fake))`` and ``D(fake) - mean(D(real))``.
BasicSR hard-codes that into ``ESRGANModel`` with ``gan_type: vanilla``; here it is a loss type
the adversarial task recognises (``GANLoss.relativistic``), and ``ragan_generator_loss`` /
``ragan_discriminator_loss`` hold the arithmetic so it is tested once. ``wgan-softplus`` is
accepted as a spelling of ``wgan_softplus``.

``r1_penalty`` and ``gradient_penalty`` are the usual discriminator regularisers, for tasks that
want them (StyleGAN2-style R1; WGAN-GP).
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from restorekit.errors import ConfigError
from restorekit.registry import LOSSES

GANType = Literal["vanilla", "lsgan", "wgan", "wgan_softplus", "wgan-softplus", "hinge", "ragan"]
_GAN_TYPES = get_args(GANType)


@LOSSES.register("GANLoss")
class GANLoss(nn.Module):
    """The adversarial loss of one GAN flavour; see the module docstring for the table."""

    def __init__(
        self,
        gan_type: GANType,
        real_label_val: float = 1.0,
        fake_label_val: float = 0.0,
        loss_weight: float = 1.0,
    ) -> None:
        super().__init__()
        if gan_type not in _GAN_TYPES:  # LOSSES.build checks the hint; this covers direct use
            raise ConfigError(f"gan_type: expected one of {', '.join(_GAN_TYPES)}, got {gan_type!r}")
        self.gan_type = "wgan_softplus" if gan_type == "wgan-softplus" else gan_type
        self.real_label_val = float(real_label_val)
        self.fake_label_val = float(fake_label_val)
        self.loss_weight = float(loss_weight)

    @property
    def relativistic(self) -> bool:
        """Whether the task must feed relativistic logits (ESRGAN's RaGAN)."""
        return self.gan_type == "ragan"

    def _raw(self, pred: Tensor, target_is_real: bool, is_disc: bool) -> Tensor:
        kind = self.gan_type
        if kind in ("vanilla", "ragan", "lsgan"):
            label = self.real_label_val if target_is_real else self.fake_label_val
            target = torch.full_like(pred, label)
            if kind == "lsgan":
                return F.mse_loss(pred, target)
            return F.binary_cross_entropy_with_logits(pred, target)
        if kind == "wgan":
            return -pred.mean() if target_is_real else pred.mean()
        if kind == "wgan_softplus":
            return F.softplus(-pred).mean() if target_is_real else F.softplus(pred).mean()
        # hinge: a margin for the discriminator, the plain critic value for the generator
        if is_disc:
            return F.relu(1 - pred).mean() if target_is_real else F.relu(1 + pred).mean()
        return -pred.mean()

    def forward(self, pred: Tensor, target_is_real: bool, is_disc: bool = False) -> Tensor:
        """Loss of discriminator outputs ``pred`` that should be judged real (or fake)."""
        loss = self._raw(pred.float(), target_is_real, is_disc)
        return loss if is_disc else loss * self.loss_weight


def ragan_generator_loss(crit: GANLoss, real_pred: Tensor, fake_pred: Tensor) -> Tensor:
    """ESRGAN's generator loss: fakes should look *more* real than the reals, and vice versa.

    ``real_pred`` must already be detached (the discriminator is not trained by this loss).
    """
    l_real = crit(real_pred - fake_pred.mean(), False, is_disc=False)
    l_fake = crit(fake_pred - real_pred.mean(), True, is_disc=False)
    return (l_real + l_fake) / 2


def ragan_discriminator_loss(crit: GANLoss, pred: Tensor, other: Tensor, target_is_real: bool) -> Tensor:
    """One half of ESRGAN's discriminator loss: ``pred`` relative to the mean of ``other``.

    Real part: ``ragan_discriminator_loss(crit, D(real), D(fake), True)``; fake part: the same
    with the roles swapped and ``False``. ``other`` is detached here; each part is halved as in
    BasicSR. Keeping the parts separate lets a task back-propagate them one after the other
    (what DistributedDataParallel needs: one forward per backward).
    """
    return crit(pred - other.detach().mean(), target_is_real, is_disc=True) * 0.5


def r1_penalty(real_pred: Tensor, real_img: Tensor) -> Tensor:
    """R1 (Mescheder et al. 2018, eq. 9): ``E[‖∇_x D(x)‖²]`` on real images.

    ``real_img`` must require grad and ``real_pred = D(real_img)``; the graph is kept
    (``create_graph``) so the penalty itself can be back-propagated into D. Multiply by γ/2
    (and the lazy-regularisation interval) in the caller, as StyleGAN2 does.
    """
    (grad,) = torch.autograd.grad(outputs=real_pred.sum(), inputs=real_img, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def gradient_penalty(
    discriminator: nn.Module, real: Tensor, fake: Tensor, weight: Tensor | None = None
) -> Tensor:
    """WGAN-GP (Gulrajani et al. 2017): ``E[(‖∇_x̂ D(x̂)‖₂ − 1)²]`` on random interpolates x̂.

    The norm is taken per sample over all of C×H×W, as in the paper. (BasicSR's
    ``gradient_penalty_loss`` takes it over channels only, i.e. per pixel — a different number.)
    An optional ``weight`` (broadcastable to the images) masks the gradients; the result is then
    divided by its mean, as BasicSR does. The interpolation draws from torch's global RNG, whose
    state every checkpoint saves.
    """
    alpha = torch.rand(real.size(0), 1, 1, 1, device=real.device, dtype=real.dtype)
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    pred = discriminator(mixed)
    (grad,) = torch.autograd.grad(
        outputs=pred, inputs=mixed, grad_outputs=torch.ones_like(pred), create_graph=True
    )
    if weight is not None:
        grad = grad * weight
    penalty = (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()
    if weight is not None:
        penalty = penalty / weight.mean()
    return penalty
