"""LIMA fine-tuning: one readable training path (data -> batches -> DeepSpeed engine in Ray Train).

Modules: `recipe` (size presets, resource checks), `data` (rows -> masked token ids), `batching`
(length-grouped micro-batches, equal passes per rank), `dropout` (residual-dropout ramp per
branch), `schedule` (linear LR), `ds_config` (DeepSpeed config), `config` (the typed config the
workers get), `session` (Ray Train or a plain process group), `collectives` (per-step statistics
over ranks), `callbacks` (hooks into the loop), `loop` (the per-worker training function),
`layout` (where everything is written), `checkpoint` (epoch checkpoints, retention, consolidated
HF models), `upload` (each rank streams its epoch files to storage in the background),
`driver` (preparation, TorchTrainer, result collection).
"""
