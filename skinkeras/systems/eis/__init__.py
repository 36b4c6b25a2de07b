"""Paper 000: electrical impedance spectroscopy (EIS) + dermoscopy for melanoma detection.

Task "eis" (`task.py`): the paper's Table 1 grid (EIS baselines, GRUs with last / mean / max state
pooling, image CNNs, max ensembles, joint models with Lin / FC / cross-attention fusion), 5-fold
cross-validation with predictions for every lesion, and its report at 98 % sensitivity.
"""
