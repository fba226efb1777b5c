package zoo

// minSamplesRight is what the shipped model must get right on the ten
// built-in samples (set when the model is replaced).
const minSamplesRight = 10
