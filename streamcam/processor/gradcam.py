"""Grad-CAM (Selvaraju et al., ICCV 2017): the optional, **slower** torch path for nets without a GAP head.

CAM needs ``features -> GAP -> linear``; Grad-CAM works for any differentiable classifier by
weighting the feature maps ``A_k`` of a chosen layer with the spatially averaged gradient of the
class score:

    alpha_k = mean_{x,y} d y_c / d A_k(x, y)        L_c = sum_k alpha_k A_k     (ReLU applied by the caller)

It needs torch, a forward *and a backward* pass per class, so it is not on the real-time path:
the pipeline runs ONNX and uses :mod:`streamcam.processor.cam`. Where both apply (a GAP + linear
head, layer = the last conv features), ``d y_c / d A_k(x, y) = W[c, k] / (h w)`` at every location, so

    L_c = M_c / (h w)        (Grad-CAM is CAM up to a positive scale)

and after ReLU + min-max normalisation the two are equal: the numpy CAM is the reference the
tests compare this module against.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class GradCAM:
    """Hooks ``target_layer`` of ``model``; ``__call__(x, class_index) -> raw map [N, h, w]`` (numpy).

    ``model(x)`` may return logits or a tuple whose first item is the logits (a streamcam GapNet).
    Use as a context manager (or call :meth:`close`) to remove the hooks.
    """

    def __init__(self, model: Any, target_layer: Any) -> None:
        try:
            import torch  # noqa: F401
        except ImportError as exc:  # pragma: no cover
            from ..errors import BackendUnavailable

            raise BackendUnavailable(f"Grad-CAM needs torch ({exc}); pip install 'streamcam[train]'") from exc
        self.model = model
        self._acts: list = []
        self._handle = target_layer.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output) -> None:
        output.retain_grad()
        self._acts.append(output)

    def __call__(self, x, class_index: int | None = None) -> np.ndarray:
        import torch

        self._acts.clear()
        self.model.zero_grad(set_to_none=True)
        with torch.enable_grad():
            out = self.model(x)
            logits = out[0] if isinstance(out, (tuple, list)) else out
            if class_index is None:
                idx = logits.argmax(dim=1)
            else:
                idx = torch.full((logits.shape[0],), int(class_index), dtype=torch.long)
            score = logits.gather(1, idx[:, None]).sum()
            act = self._acts[-1]
            score.backward()
        grads = act.grad  # [N, K, h, w]
        alpha = grads.mean(dim=(2, 3), keepdim=True)
        cam = (alpha * act).sum(dim=1)
        self._acts.clear()
        return cam.detach().cpu().numpy().astype(np.float32)

    def close(self) -> None:
        self._handle.remove()

    def __enter__(self) -> "GradCAM":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def grad_cam(model: Any, target_layer: Any, x, class_index: int | None = None) -> np.ndarray:
    """One-shot Grad-CAM: raw map ``[N, h, w]`` (no ReLU) of ``class_index`` (default: the top class)."""
    with GradCAM(model, target_layer) as g:
        return g(x, class_index)


__all__ = ["GradCAM", "grad_cam"]
