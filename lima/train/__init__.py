"""LIMA fine-tuning: one readable training path (data -> batches -> DeepSpeed engine in Ray Train).

Modules: `data` (rows -> masked token ids), `batching` (length-grouped micro-batches), `dropout`
(residual-dropout ramp), `schedule` (linear LR), `ds_config` (DeepSpeed config), `loop` (the
per-worker training function), `checkpoint` (epoch checkpoints + consolidated HF models),
`driver` (TorchTrainer setup and result collection).
"""
