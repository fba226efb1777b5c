package kernel

const q8pwHaveAVX2 = false
