namespace MlNetFineTune.Tensors; public static class Placeholder {}
