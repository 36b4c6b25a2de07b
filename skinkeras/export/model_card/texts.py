"""The fixed texts of a model card: the warning, class descriptions, known dataset biases."""

# HAM10000 diagnosis codes (Tschandl et al. 2018), for readers who do not know them.
CLASS_DESCRIPTIONS = {
    "akiec": "actinic keratosis / intraepithelial carcinoma",
    "bcc": "basal cell carcinoma",
    "bkl": "benign keratosis-like lesion",
    "df": "dermatofibroma",
    "mel": "melanoma",
    "nv": "melanocytic nevus",
    "vasc": "vascular lesion",
}

DATASET_BIAS = {
    "ham10000": (
        "HAM10000 comes from two centres (Vienna, Austria and Queensland, Australia): mostly "
        "fair-skinned patients of European descent. Performance on darker skin types is unknown "
        "and likely lower. About two thirds of its images are melanocytic nevi."
    ),
    "isic2017": (
        "The ISIC 2017 archive images come mostly from fair-skinned patients (USA, Europe, "
        "Australia); performance on darker skin types is unknown."
    ),
}

WARNING = (
    "> **Research use only. Not for diagnosis.** This model is not a medical device and has not\n"
    "> been clinically validated. Its output must not be used to diagnose, exclude or treat any\n"
    "> condition. Every suspicious skin lesion must be examined by a qualified clinician."
)
