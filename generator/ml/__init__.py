"""Pure PyTorch pieces of the generator: the UNet, v-prediction diffusion, DDIM sampling and D-TRAK attribution.

Nothing here touches Django, so the benchmarks and the tests can use it directly. Import lazily (torch is heavy).
"""
