"""Config → objects: the data module, the method (with its teacher), the Trainer, and a model
rebuilt from a saved checkpoint. Entry points call these; nothing below them imports them.

- `data.build_datamodule(cfg)`, `data.resolve_data_shape(cfg, datamodule)`
- `method.build_method(cfg, datamodule)` (asks `teacher.build_teacher` when the method needs one)
- `trainer.build_trainer(cfg, run_dir, datamodule)`
- `saved_model.load_saved_model(path)`: a checkpoint's classifier, rebuilt from an allowlist
"""
