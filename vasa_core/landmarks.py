"""The one table of mediapipe face-mesh landmark indices (478 points: 468 + 10 iris) used across the project:
the engine's rig and renderer, the trackers of the tools, the detector's signals.

Left and right are the SUBJECT's: "R" is the subject's right eye, which is on the image's left (landmark 33);
"L" the subject's left (landmark 263). Lists run along a contour; tuples are unordered sets or pairs.
"""
from __future__ import annotations

FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
             148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109]
LIPS_INNER_UPPER = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308]
LIPS_INNER_LOWER = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308]
LIPS_OUTER_UPPER = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291]
LIPS_OUTER_LOWER = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291]
MOUTH_CORNERS = (61, 291)           # outer lip corners (image left, right)
INNER_CORNERS = (78, 308)           # inner lip corners
LIP_MID_UPPER, LIP_MID_LOWER = 13, 14   # inner lip edges at the mouth's middle
# eyes, as seen in the image: "R" = subject's right eye (image left)
EYE_R_UPPER = [33, 246, 161, 160, 159, 158, 157, 173, 133]
EYE_R_LOWER = [33, 7, 163, 144, 145, 153, 154, 155, 133]
EYE_L_UPPER = [263, 466, 388, 387, 386, 385, 384, 398, 362]
EYE_L_LOWER = [263, 249, 390, 373, 374, 380, 381, 382, 362]
IRIS_R = [468, 469, 470, 471, 472]   # centre first
IRIS_L = [473, 474, 475, 476, 477]
BROW_R = [70, 63, 105, 66, 107, 55, 65, 52, 53, 46]
BROW_L = [300, 293, 334, 296, 336, 285, 295, 282, 283, 276]
NOSE_TIP, NOSE_BASE, CHIN, FOREHEAD = 1, 2, 152, 10
CHEEK_R, CHEEK_L = 234, 454

# points that move with the skull, not with expression (eye corners, nose bridge and tip, forehead, face
# sides): what head pose and tracker jitter are measured on
RIGID = (33, 133, 362, 263, 1, 4, 5, 6, 168, 197, 195, 10, 151, 9, 8, 234, 454, 127, 356)
# one point per feature where a single height is wanted: mid upper and lower lid, inner and mid brow
EYE_R_LIDS, EYE_L_LIDS = (159, 145), (386, 374)          # (upper, lower)
EYE_R_CORNERS, EYE_L_CORNERS = (33, 133), (263, 362)     # (outer, inner)
BROW_R_MID, BROW_L_MID = 105, 334
