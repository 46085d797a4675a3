"""Wiring: each pipeline connects models and diffusion maths for one task; the studio chains them."""
