"""The engine every system plugs into: run directories (`run_directory`), a run's data and split
(`run_data`), the fit engine (`fit`, `callbacks`, `runtime`) and k-fold cross-validation
(`crossval`). The task registry is `skinkeras.tasks`. See docs/ARCHITECTURE.md."""
