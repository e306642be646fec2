"""``Tracker``: the Keras callback that streams a fit and obeys remote STOP / set_lr / checkpoint."""

from __future__ import annotations

import os
from typing import Any

from fitwire.callback.session import DEFAULT_MAX_BATCHES_PER_SECOND, RunSession, SignalHandlers
from fitwire.callback.transport import FLUSH_S
from fitwire.contract.messages import Signal, learning_rate_problem
from fitwire.settings import Settings

try:
    import keras

    _Base: Any = keras.callbacks.Callback
    _FRAMEWORK, _VERSION = "keras", keras.__version__
except ImportError:  # tf_keras alone (Keras 2)
    try:
        import tf_keras as keras  # type: ignore[no-redef]

        _Base = keras.callbacks.Callback
        _FRAMEWORK, _VERSION = "tf_keras", keras.__version__
    except ImportError:
        raise ImportError(
            "fitwire.callback.Tracker needs Keras: pip install keras (or tensorflow); "
            "without Keras, use fitwire.callback.RunSession"
        ) from None


class Tracker(_Base):  # type: ignore[misc]
    """Streams every batch and epoch of ``model.fit`` to fitwire and obeys remote signals.

    Each ``fit`` is a new run (unless ``run_id`` is fixed); the same instance
    can be reused. Tracking never blocks or fails the fit: a missing broker or
    webhook costs one warning line.

    Args:
        model_key: the model key (``fitwire models create``).
        token: API token; default ``FITWIRE_TOKEN`` or the ``fitwire login`` file.
        run_id: a fixed run id, so a resumed job continues the same run.
        webhook_url: default ``FITWIRE_WEBHOOK_URL`` or the login file's server.
        amqp_url: the broker, unless the webhook announces a login of this client's own (that wins);
            it beats FITWIRE_AMQP_URL and a shared login the webhook announces.
        checkpoint_path: where a ``checkpoint`` signal (and a STOP) saves the
            model: ``*.keras`` (whole model) or ``*.weights.h5``; may contain
            ``{epoch}`` and ``{run_id}``.
        every_n_batches: publish only every n-th batch.
        max_batches_per_second: publish at most this many batches a second
            (default None: every batch, at about a plain fit's speed).
        flush_interval: longest a batch waits before it is published (s; default
            0.05); faster batches travel together in one message. On a machine too
            busy to keep to it, the window widens up to 0.4 s until it can.
        outbox_wait: seconds the end of ``fit`` may wait for the webhook.
        settings: default ``Settings.from_env()``.
        owner: the username the run's routing keys start with when no webhook answers for the
            token (default: the saved login's, else ``anonymous``); the webhook's answer wins.

    Example:
        ```python
        model.fit(x, y, epochs=5, validation_split=0.1, callbacks=[Tracker("MODEL_KEY")])
        ```
    """

    async_safe = True
    """Batch-end hooks only enqueue a dict, so Keras may run them off the training thread."""
    _supports_tf_logs = False

    def __init__(
        self,
        model_key: str,
        *,
        token: str | None = None,
        run_id: str | None = None,
        webhook_url: str | None = None,
        amqp_url: str | None = None,
        checkpoint_path: str | os.PathLike[str] | None = None,
        every_n_batches: int | None = None,
        max_batches_per_second: float | None = DEFAULT_MAX_BATCHES_PER_SECOND,
        outbox_wait: float | None = None,
        flush_interval: float = FLUSH_S,
        settings: Settings | None = None,
        owner: str | None = None,
    ) -> None:
        super().__init__()
        if not model_key or not isinstance(model_key, str):
            raise ValueError("model_key must be a non-empty string (the key `fitwire models create` printed)")
        self.model_key = model_key
        self.checkpoint_path = os.fspath(checkpoint_path) if checkpoint_path is not None else None
        self._options: dict[str, Any] = dict(
            token=token, run_id=run_id, webhook_url=webhook_url, amqp_url=amqp_url, settings=settings,
            every_n_batches=every_n_batches, max_batches_per_second=max_batches_per_second,
            outbox_wait=outbox_wait, flush_interval=flush_interval, owner=owner,
        )
        RunSession(model_key, **self._options)  # fail on bad options now, not in the middle of fit
        self.session: RunSession | None = None
        self._epoch = 0
        self._began = False
        self._evaluating = False

    @property
    def run_id(self) -> str | None:
        """The id of the current (or last) run."""
        return self.session.run_id if self.session else None

    # --- tf_keras's CallbackList asks these of every callback ---------------------

    def _implements_train_batch_hooks(self) -> bool:
        return True

    def _implements_test_batch_hooks(self) -> bool:
        return True

    def _implements_predict_batch_hooks(self) -> bool:
        return False

    # --- fit ---------------------------------------------------------------------------

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self.session is not None and not self.session.ended:
            # on_train_end never ran: the previous fit raised.
            self.session.end("failed", "fit raised before it ended")
        self.session = RunSession(self.model_key, handlers=self._handlers(), **self._options)
        self._epoch, self._began, self._evaluating = 0, False, False
        self.session.open()

    def _begin(self, epoch: int) -> None:
        """Publish train_begin at the first epoch, when the initial epoch of a resumed fit is known."""
        if self._began or self.session is None:
            return
        self._began = True
        params = dict(self.params or {})
        framework, version = _framework_of(self._model)
        self.session.start(params=params, epochs=params.get("epochs"), steps=params.get("steps"),
                           framework=framework, framework_version=version, initial_epoch=epoch)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._begin(epoch)
        self._epoch = epoch
        if self.session is not None:
            self.session.begin_epoch(epoch)

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        session = self.session
        if session is not None and session.has_pending:
            session.apply_signals()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        session = self.session
        if session is not None:
            session.log_batch(self._epoch, batch, logs)

    def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self._fitting():
            self._evaluating = True
            self._cut_validation()

    def on_test_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self._evaluating:
            self._cut_validation()

    def on_test_end(self, logs: dict[str, Any] | None = None) -> None:
        self._evaluating = False

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        session = self.session
        if session is None:
            return
        if session.has_pending:
            session.apply_signals()
        session.log_epoch(epoch, logs)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        session = self.session
        if session is None or session.ended:
            return
        self._begin(self._epoch)
        if session.has_pending:
            session.apply_signals()
        if session.stop_requested:
            sender = session.stop_signal.sender if session.stop_signal else ""
            reason = f"STOP signal from {sender}" if sender else "STOP signal"
            if self.checkpoint_path:
                ok, detail = self._checkpoint()
                reason += f"; {detail}"
            session.end("stopped", reason, logs)
        else:
            stopped_early = bool(getattr(self._model, "stop_training", False))
            session.end("completed", "stop_training set by a callback" if stopped_early else None, logs)

    # --- remote control -----------------------------------------------------------------

    def _fitting(self) -> bool:
        return self.session is not None and not self.session.ended

    def _handlers(self) -> SignalHandlers:
        """What a Keras fit does with each signal: the one table of them."""
        return {
            "stop": self._stop,
            "set_lr": lambda signal: self._set_lr(signal.value),
            "checkpoint": lambda signal: self._checkpoint(),
        }

    def _stop(self, signal: Signal) -> tuple[bool, str]:
        """Runs on the transport thread: Keras reads these flags after every step, so halt is one step away."""
        model = self._model
        if model is None:
            return True, "stop requested before the model was set"
        model.stop_training = True
        if self._evaluating:
            model.stop_evaluating = True
            return True, "stop_training and stop_evaluating set: validation is cut short and fit ends"
        return True, "stop_training set: fit ends after the current batch"

    def _cut_validation(self) -> None:
        if self.session is not None and self.session.stop_requested and self._model is not None:
            self._model.stop_evaluating = True

    def _set_lr(self, value: float | None) -> tuple[bool, str]:
        problem = learning_rate_problem(value)
        if problem is not None or value is None:
            return False, problem or "set_lr needs a value"
        optimizer = getattr(self._model, "optimizer", None)
        if optimizer is None:
            return False, "the model has no optimizer"
        inner = getattr(optimizer, "inner_optimizer", optimizer)  # LossScaleOptimizer wraps the real one
        current = getattr(inner, "_learning_rate", None)
        if _is_schedule(current) or (callable(current) and not hasattr(current, "assign")):
            return False, (f"the learning rate is a schedule ({type(current).__name__}); "
                           "refusing to override it")
        old = _read(inner.learning_rate)
        inner.learning_rate = value
        new = _read(inner.learning_rate)
        return True, f"learning_rate {old:.6g} -> {new:.6g}"

    def _checkpoint(self) -> tuple[bool, str]:
        if not self.checkpoint_path:
            return False, "no checkpoint_path was given to the Tracker"
        path = self.checkpoint_path
        if "{" in path:
            path = path.format(epoch=self._epoch + 1, run_id=self.run_id)
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if path.endswith(".weights.h5"):
            self._model.save_weights(path)
        else:
            self._model.save(path)
        return True, f"saved to {path}"


def _framework_of(model: object) -> tuple[str, str]:
    """Keras 3 or tf_keras, by the module the model's class comes from."""
    root = type(model).__module__.split(".")[0]
    if root == "tf_keras":
        import tf_keras

        return "tf_keras", str(tf_keras.__version__)
    return _FRAMEWORK, _VERSION


def _is_schedule(value: object) -> bool:
    """Keras 3 and tf_keras each have their own LearningRateSchedule class; match either by name."""
    return any(cls.__name__ == "LearningRateSchedule" for cls in type(value).__mro__)


def _read(value: Any) -> float:
    return float(value.numpy()) if hasattr(value, "numpy") else float(value)
