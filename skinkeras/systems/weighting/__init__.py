"""Paper 003 (Barata & Santiago, "How Important Is Each Dermoscopy Image?"): sample weighting
strategies on a flat and a hierarchical classifier (task "weighting").

The grid of Tables 2-5: loss CEL or focal (FL) x weighting none / class-balanced (CB) / effective
number (ES) / self-paced learning (SPL) / online hard example mining (OHEM) x the flat CBAM model or
the hierarchical model (per-level CBAM + LSTM over the HAM10000 taxonomy) x Adam or SGD, each trained
on two lesion-grouped random 80/20 splits of the training set and scored on the 20 %.

`task` registers it; `config` its section; `rows` the tables' rows and the paper's figures as data;
`data` the splits and the tf.data streams; `model` the builders and the hierarchical loss; `train`
the grid (one cell per row and split); `stats` the metrics; `evaluate` / `report` Tables 2-5 with
BCa intervals per split and permutation tests against the CEL baseline.
"""
