"""The engine every system plugs into: the task registry (`tasks`), run directories
(`run_directory`), a run's data and split (`run_data`), the fit engine (`fit`, `callbacks`,
`runtime`) and k-fold cross-validation (`crossval`). See docs/ARCHITECTURE.md."""
