// The CPU kernels compiled for the baseline instruction set of the target.
#define CPU_CAPABILITY DEFAULT
#define IQ_ISA baseline
#include "kernels.h"
#include "isa_entry_points.h"
