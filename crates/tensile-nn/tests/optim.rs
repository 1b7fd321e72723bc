//! Optimizers: each update sequence against the documented equations (worked out here in f64)
//! and against torch.optim; state save/restore continuing bit for bit; gradient clipping;
//! parameter groups.

mod common;

use tensile_core::{DType, GradStore, Rng, Tensor};
use tensile_nn::optim::{GroupState, split_by_patterns};
use tensile_nn::{
    Adagrad, AdagradConfig, Adam, AdamConfig, AdamW, AdamWConfig, Error, GradClip, Lion, LionConfig, Optimizer,
    OptimizerState, ParamGroup, RmsProp, RmsPropConfig, Sgd, SgdConfig, clip_grad_norm, clip_grad_value, decay_split,
};

// ---- fixed parameter and gradients (the same in tests/reference/optim.py) ---------------------

const P0: [f32; 4] = [0.5, -1.2, 2.0, -0.03];
const GRADS: [[f32; 4]; 6] = [
    [0.1, -0.2, 0.3, 0.05],
    [-0.4, 0.25, 0.1, 0.2],
    [0.3, 0.3, -0.5, -0.1],
    [0.05, -0.6, 0.2, 0.4],
    [-0.2, 0.1, 0.7, -0.3],
    [0.15, 0.35, -0.25, 0.6],
];

type Trajectory = Vec<[f64; 4]>;

fn param(values: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(values, shape).unwrap().requires_grad()
}

fn grads_for(pairs: &[(&Tensor, Vec<f32>)]) -> GradStore {
    let mut store = GradStore::default();
    for (p, g) in pairs {
        store.insert(p, Tensor::from_vec(g.clone(), p.shape()).unwrap());
    }
    store
}

/// Runs an optimizer over the six fixed gradients and records the parameter after each step.
fn trajectory(make: impl FnOnce(Vec<(String, Tensor)>) -> Box<dyn Optimizer>) -> Trajectory {
    let p = param(&P0, &[4]);
    let mut opt = make(vec![("p".to_string(), p.clone())]);
    GRADS
        .iter()
        .map(|g| {
            opt.step(&grads_for(&[(&p, g.to_vec())])).unwrap();
            let v = p.to_vec::<f32>().unwrap();
            [v[0] as f64, v[1] as f64, v[2] as f64, v[3] as f64]
        })
        .collect()
}

fn assert_close(label: &str, got: &Trajectory, want: &Trajectory, tol: f64) {
    assert_eq!(got.len(), want.len(), "{label}");
    for (t, (g, w)) in got.iter().zip(want).enumerate() {
        for i in 0..4 {
            assert!((g[i] - w[i]).abs() <= tol, "{label}: step {} element {i}: got {} want {}", t + 1, g[i], w[i]);
        }
    }
}

/// Runs one reference rule elementwise over the fixed gradients, in f64. `rule(t, i, p, g)`
/// returns the new parameter; per-element state lives in the closure.
fn reference(mut rule: impl FnMut(u64, usize, f64, f64) -> f64) -> Trajectory {
    let mut p: [f64; 4] = P0.map(|x| x as f64);
    let mut out = Vec::new();
    for (t, g) in GRADS.iter().enumerate() {
        for i in 0..4 {
            p[i] = rule(t as u64 + 1, i, p[i], g[i] as f64);
        }
        out.push(p);
    }
    out
}

// ---- the documented equations, in f64 ----------------------------------------------------------

fn ref_sgd(lr: f64, mu: f64, dampening: f64, nesterov: bool, wd: f64) -> Trajectory {
    let mut b = [0.0f64; 4];
    reference(|t, i, p, g| {
        let mut d = g + wd * p;
        if mu != 0.0 {
            b[i] = if t == 1 { d } else { mu * b[i] + (1.0 - dampening) * d };
            d = if nesterov { d + mu * b[i] } else { b[i] };
        }
        p - lr * d
    })
}

#[allow(clippy::too_many_arguments)]
fn ref_adam(lr: f64, b1: f64, b2: f64, eps: f64, wd: f64, amsgrad: bool, decoupled: bool) -> Trajectory {
    let (mut m, mut v, mut vmax) = ([0.0f64; 4], [0.0f64; 4], [0.0f64; 4]);
    reference(|t, i, p, g| {
        let p = if decoupled { p - lr * wd * p } else { p };
        let g = if decoupled { g } else { g + wd * p };
        m[i] = b1 * m[i] + (1.0 - b1) * g;
        v[i] = b2 * v[i] + (1.0 - b2) * g * g;
        vmax[i] = vmax[i].max(v[i]);
        let m_hat = m[i] / (1.0 - b1.powi(t as i32));
        let v_hat = if amsgrad { vmax[i] } else { v[i] } / (1.0 - b2.powi(t as i32));
        p - lr * m_hat / (v_hat.sqrt() + eps)
    })
}

fn ref_rmsprop(lr: f64, alpha: f64, eps: f64, wd: f64, mu: f64, centered: bool) -> Trajectory {
    let (mut s, mut a, mut b) = ([0.0f64; 4], [0.0f64; 4], [0.0f64; 4]);
    reference(|_, i, p, g| {
        let g = g + wd * p;
        s[i] = alpha * s[i] + (1.0 - alpha) * g * g;
        a[i] = alpha * a[i] + (1.0 - alpha) * g;
        let denom = if centered { (s[i] - a[i] * a[i]).sqrt() } else { s[i].sqrt() } + eps;
        if mu > 0.0 {
            b[i] = mu * b[i] + g / denom;
            p - lr * b[i]
        } else {
            p - lr * g / denom
        }
    })
}

fn ref_adagrad(lr: f64, lr_decay: f64, wd: f64, init: f64, eps: f64) -> Trajectory {
    let mut s = [init; 4];
    reference(|t, i, p, g| {
        let g = g + wd * p;
        let clr = lr / (1.0 + (t - 1) as f64 * lr_decay);
        s[i] += g * g;
        p - clr * g / (s[i].sqrt() + eps)
    })
}

fn ref_lion(lr: f64, b1: f64, b2: f64, wd: f64) -> Trajectory {
    let mut m = [0.0f64; 4];
    reference(|_, i, p, g| {
        let p = p * (1.0 - lr * wd);
        let c = b1 * m[i] + (1.0 - b1) * g;
        // Ties would make f32 and f64 disagree; the fixed gradients avoid them.
        assert!(c.abs() > 1e-4, "near-zero Lion interpolation {c}");
        m[i] = b2 * m[i] + (1.0 - b2) * g;
        p - lr * c.signum()
    })
}

// ---- torch.optim's trajectories ---------------------------------------------------------------

/// Printed by tests/reference/optim.py (torch 2.x, CPU, f32): the parameter after each step.
fn torch(case: &str) -> Trajectory {
    let rows: Vec<[f64; 4]> = match case {
        "sgd_plain" => vec![
            [4.900000095e-01, -1.180000067e+00, 1.970000029e+00, -3.500000015e-02],
            [5.300000310e-01, -1.205000043e+00, 1.960000038e+00, -5.499999970e-02],
            [5.000000000e-01, -1.235000014e+00, 2.009999990e+00, -4.499999806e-02],
            [4.950000048e-01, -1.174999952e+00, 1.990000010e+00, -8.500000089e-02],
            [5.149999857e-01, -1.184999943e+00, 1.919999957e+00, -5.499999970e-02],
            [4.999999702e-01, -1.219999909e+00, 1.944999933e+00, -1.150000021e-01],
        ],
        "sgd_momentum" => vec![
            [4.894999862e-01, -1.178800106e+00, 1.968000054e+00, -3.497000039e-02],
            [5.156094432e-01, -1.181159139e+00, 1.928428888e+00, -5.741152540e-02],
            [5.116438866e-01, -1.209219217e+00, 1.936079264e+00, -6.855722517e-02],
            [5.031144023e-01, -1.179385066e+00, 1.923222065e+00, -1.145266518e-01],
            [5.129850507e-01, -1.160472870e+00, 1.846919656e+00, -1.287960708e-01],
            [5.079069734e-01, -1.173907399e+00, 1.799085259e+00, -1.955226362e-01],
        ],
        "sgd_nesterov" => vec![
            [4.864999950e-01, -1.171200037e+00, 1.955000043e+00, -3.423000127e-02],
            [5.133215189e-01, -1.172919273e+00, 1.912405014e+00, -5.342593044e-02],
            [4.891048372e-01, -1.185423136e+00, 1.917937398e+00, -5.143876001e-02],
            [4.748828113e-01, -1.123449087e+00, 1.874751449e+00, -8.959978074e-02],
            [4.811876714e-01, -1.101500511e+00, 1.776001692e+00, -7.652795315e-02],
            [4.623003900e-01, -1.106022000e+00, 1.739016891e+00, -1.317401379e-01],
        ],
        "adam" => vec![
            [4.900000095e-01, -1.190000057e+00, 1.990000010e+00, -3.999999538e-02],
            [4.955950379e-01, -1.191627383e+00, 1.981289387e+00, -4.884376004e-02],
            [4.953318536e-01, -1.196914554e+00, 1.983093143e+00, -5.220475420e-02],
            [4.945496917e-01, -1.194777250e+00, 1.982630372e+00, -5.861597136e-02],
            [4.959198534e-01, -1.193714738e+00, 1.978297472e+00, -6.017989665e-02],
            [4.956831038e-01, -1.195095420e+00, 1.976035118e+00, -6.494079530e-02],
        ],
        "adam_wd_amsgrad" => vec![
            [4.800001383e-01, -1.180000067e+00, 1.980000019e+00, -4.999957606e-02],
            [4.894442260e-01, -1.174319267e+00, 1.961040854e+00, -6.801655143e-02],
            [4.850075841e-01, -1.177378774e+00, 1.955486298e+00, -7.294825464e-02],
            [4.791399837e-01, -1.166843772e+00, 1.944833517e+00, -8.621589839e-02],
            [4.783742130e-01, -1.158408761e+00, 1.929654479e+00, -8.754665405e-02],
            [4.732336402e-01, -1.155378222e+00, 1.918302298e+00, -9.761600196e-02],
        ],
        "adamw" => vec![
            [4.895000160e-01, -1.188800097e+00, 1.988000035e+00, -3.996999562e-02],
            [4.946055412e-01, -1.189238667e+00, 1.977301478e+00, -4.877379164e-02],
            [4.938477576e-01, -1.193336606e+00, 1.977127910e+00, -5.208601430e-02],
            [4.925717413e-01, -1.190006018e+00, 1.974688053e+00, -5.844514444e-02],
            [4.934493303e-01, -1.187753558e+00, 1.968380451e+00, -5.995062366e-02],
            [4.927191436e-01, -1.187946558e+00, 1.964149714e+00, -6.465157121e-02],
        ],
        "adamw_amsgrad" => vec![
            [4.897499979e-01, -1.189400077e+00, 1.988999963e+00, -3.998499736e-02],
            [4.953324199e-01, -1.190714478e+00, 1.979406476e+00, -4.893722385e-02],
            [4.946595430e-01, -1.195759058e+00, 1.980667710e+00, -5.202903226e-02],
            [4.934631884e-01, -1.192746878e+00, 1.979361057e+00, -5.864246562e-02],
            [4.946900308e-01, -1.190994263e+00, 1.973722339e+00, -5.988597497e-02],
            [4.940697551e-01, -1.192017078e+00, 1.970507264e+00, -6.488354504e-02],
        ],
        "rmsprop" => vec![
            [4.000000954e-01, -1.100000143e+00, 1.900000095e+00, -1.299998015e-01],
            [4.970428646e-01, -1.178239822e+00, 1.868234038e+00, -2.270425558e-01],
            [4.380034208e-01, -1.246869922e+00, 1.952978730e+00, -1.832108498e-01],
            [4.281619489e-01, -1.165904760e+00, 1.920730233e+00, -2.701817751e-01],
            [4.649513960e-01, -1.179343939e+00, 1.845716000e+00, -2.153559923e-01],
            [4.382287860e-01, -1.222082853e+00, 1.871715784e+00, -2.894119918e-01],
        ],
        "rmsprop_centered_momentum_wd" => vec![
            [4.666675627e-01, -1.166667104e+00, 1.966666937e+00, -6.333103776e-02],
            [4.741962850e-01, -1.162755013e+00, 1.927255511e+00, -1.198964939e-01],
            [4.587599039e-01, -1.180301309e+00, 1.921990395e+00, -1.439968795e-01],
            [4.430776238e-01, -1.164312243e+00, 1.902869225e+00, -1.907072961e-01],
            [4.437064230e-01, -1.154995680e+00, 1.862153888e+00, -2.046288252e-01],
            [4.330166876e-01, -1.160991192e+00, 1.839105725e+00, -2.396682203e-01],
        ],
        "adagrad" => vec![
            [3.999999762e-01, -1.100000024e+00, 1.899999976e+00, -1.300000101e-01],
            [4.970142245e-01, -1.178086877e+00, 1.868377209e+00, -2.270142734e-01],
            [4.381793737e-01, -1.246463180e+00, 1.952892661e+00, -1.833706945e-01],
            [4.284203649e-01, -1.165742397e+00, 1.920867085e+00, -2.701428831e-01],
            [4.647839963e-01, -1.179075718e+00, 1.846246839e+00, -2.155974209e-01],
            [4.384722710e-01, -1.221364260e+00, 1.871998191e+00, -2.893128395e-01],
        ],
        "adagrad_full" => vec![
            [4.671458900e-01, -1.142197371e+00, 1.926775813e+00, -4.543446004e-02],
            [5.394592881e-01, -1.190358877e+00, 1.899546862e+00, -9.573817253e-02],
            [4.924550056e-01, -1.237974763e+00, 1.962280512e+00, -7.201021910e-02],
            [4.838394821e-01, -1.171523571e+00, 1.933019280e+00, -1.341251731e-01],
            [5.088821054e-01, -1.179294348e+00, 1.872979164e+00, -9.438856691e-02],
            [4.892666936e-01, -1.208846688e+00, 1.889218569e+00, -1.492509544e-01],
        ],
        "lion" => vec![
            [4.900000095e-01, -1.190000057e+00, 1.990000010e+00, -3.999999911e-02],
            [5.000000000e-01, -1.200000048e+00, 1.980000019e+00, -4.999999702e-02],
            [4.900000095e-01, -1.210000038e+00, 1.990000010e+00, -3.999999911e-02],
            [4.800000191e-01, -1.200000048e+00, 1.980000019e+00, -4.999999702e-02],
            [4.900000095e-01, -1.210000038e+00, 1.970000029e+00, -3.999999911e-02],
            [4.800000191e-01, -1.220000029e+00, 1.980000019e+00, -4.999999702e-02],
        ],
        "lion_wd" => vec![
            [4.749999940e-01, -1.168000102e+00, 1.960000038e+00, -4.969999939e-02],
            [4.902500212e-01, -1.176320076e+00, 1.920400023e+00, -6.920300424e-02],
            [4.653475285e-01, -1.184556842e+00, 1.921195984e+00, -4.851097241e-02],
            [4.406940341e-01, -1.152711272e+00, 1.881984115e+00, -6.802585721e-02],
            [4.562871158e-01, -1.161184192e+00, 1.843164325e+00, -4.734559730e-02],
            [4.317242503e-01, -1.169572353e+00, 1.844732642e+00, -6.687214226e-02],
        ],
        other => panic!("no torch reference for {other}"),
    };
    rows
}

// ---- each optimizer: equations and torch ------------------------------------------------------

fn check(case: &str, make: impl FnOnce(Vec<(String, Tensor)>) -> Box<dyn Optimizer>, equations: Trajectory) {
    let got = trajectory(make);
    assert_close(&format!("{case} vs equations"), &got, &equations, 1e-6);
    assert_close(&format!("{case} vs torch"), &got, &torch(case), 1e-6);
}

#[test]
fn sgd_follows_its_equations_and_torch() {
    let sgd = |c: SgdConfig| move |p| Box::new(Sgd::new(p, c)) as Box<dyn Optimizer>;
    check("sgd_plain", sgd(SgdConfig { lr: 0.1, ..Default::default() }), ref_sgd(0.1, 0.0, 0.0, false, 0.0));
    let c = SgdConfig { lr: 0.1, momentum: 0.9, dampening: 0.1, nesterov: false, weight_decay: 0.01 };
    check("sgd_momentum", sgd(c), ref_sgd(0.1, 0.9, 0.1, false, 0.01));
    let c = SgdConfig { lr: 0.05, momentum: 0.8, dampening: 0.0, nesterov: true, weight_decay: 0.1 };
    check("sgd_nesterov", sgd(c), ref_sgd(0.05, 0.8, 0.0, true, 0.1));
}

#[test]
fn adam_with_l2_weight_decay_and_amsgrad_follows_its_equations_and_torch() {
    let adam = |c: AdamConfig| move |p| Box::new(Adam::new(p, c)) as Box<dyn Optimizer>;
    let c = AdamConfig { lr: 0.01, ..Default::default() };
    check("adam", adam(c), ref_adam(0.01, 0.9, 0.999, 1e-8, 0.0, false, false));
    let c = AdamConfig { lr: 0.02, beta1: 0.8, beta2: 0.95, eps: 1e-6, weight_decay: 0.1, amsgrad: true };
    check("adam_wd_amsgrad", adam(c), ref_adam(0.02, 0.8, 0.95, 1e-6, 0.1, true, false));
}

#[test]
fn adamw_decouples_weight_decay_as_its_equations_and_torch() {
    let adamw = |c: AdamWConfig| move |p| Box::new(AdamW::new(p, c)) as Box<dyn Optimizer>;
    let c = AdamWConfig { lr: 0.01, weight_decay: 0.1, ..Default::default() };
    check("adamw", adamw(c), ref_adam(0.01, 0.9, 0.999, 1e-8, 0.1, false, true));
    let c = AdamWConfig { lr: 0.01, beta1: 0.85, beta2: 0.99, eps: 1e-8, weight_decay: 0.05, amsgrad: true };
    check("adamw_amsgrad", adamw(c), ref_adam(0.01, 0.85, 0.99, 1e-8, 0.05, true, true));
    assert_eq!(AdamWConfig::default().weight_decay, 0.01, "PyTorch's AdamW default");
}

#[test]
fn rmsprop_plain_and_centered_with_momentum_follow_their_equations_and_torch() {
    let rms = |c: RmsPropConfig| move |p| Box::new(RmsProp::new(p, c)) as Box<dyn Optimizer>;
    let c = RmsPropConfig { lr: 0.01, ..Default::default() };
    check("rmsprop", rms(c), ref_rmsprop(0.01, 0.99, 1e-8, 0.0, 0.0, false));
    let c = RmsPropConfig { lr: 0.01, alpha: 0.9, eps: 1e-6, weight_decay: 0.05, momentum: 0.7, centered: true };
    check("rmsprop_centered_momentum_wd", rms(c), ref_rmsprop(0.01, 0.9, 1e-6, 0.05, 0.7, true));
}

#[test]
fn adagrad_with_lr_decay_and_initial_accumulator_follows_its_equations_and_torch() {
    let ada = |c: AdagradConfig| move |p| Box::new(Adagrad::new(p, c)) as Box<dyn Optimizer>;
    check("adagrad", ada(AdagradConfig { lr: 0.1, ..Default::default() }), ref_adagrad(0.1, 0.0, 0.0, 0.0, 1e-10));
    let c = AdagradConfig { lr: 0.1, lr_decay: 0.05, weight_decay: 0.02, initial_accumulator_value: 0.1, eps: 1e-8 };
    check("adagrad_full", ada(c), ref_adagrad(0.1, 0.05, 0.02, 0.1, 1e-8));
}

#[test]
fn lion_follows_its_equations_and_lion_pytorch() {
    let lion = |c: LionConfig| move |p| Box::new(Lion::new(p, c)) as Box<dyn Optimizer>;
    check("lion", lion(LionConfig { lr: 0.01, ..Default::default() }), ref_lion(0.01, 0.9, 0.99, 0.0));
    let c = LionConfig { lr: 0.02, weight_decay: 0.5, ..Default::default() };
    check("lion_wd", lion(c), ref_lion(0.02, 0.9, 0.99, 0.5));
}

#[test]
fn a_parameter_without_gradient_is_left_alone_and_its_step_count_does_not_advance() {
    let a = param(&[1.0, 2.0], &[2]);
    let b = param(&[3.0], &[1]);
    let mut opt = Adam::new(vec![("a".into(), a.clone()), ("b".into(), b.clone())], AdamConfig::default());
    opt.step(&grads_for(&[(&a, vec![0.1, 0.1])])).unwrap();
    opt.step(&grads_for(&[(&a, vec![0.1, 0.1]), (&b, vec![0.5])])).unwrap();
    let state = opt.state();
    assert_eq!(state.params["a"].step, 2);
    assert_eq!(state.params["b"].step, 1);
    // After one step Adam moves by lr * sign(g) (to rounding), whatever the step number.
    assert!((b.to_vec::<f32>().unwrap()[0] - (3.0 - 1e-3)).abs() < 1e-6);
}

#[test]
fn a_gradient_of_the_wrong_shape_is_an_error_that_changes_nothing() {
    let a = param(&[1.0, 2.0], &[2]);
    let b = param(&[3.0, 4.0], &[2]);
    let mut opt = Sgd::new(vec![("a".into(), a.clone()), ("b".into(), b.clone())], SgdConfig::default());
    let mut grads = grads_for(&[(&a, vec![1.0, 1.0])]);
    grads.insert(&b, Tensor::from_vec(vec![1.0f32; 3], 3).unwrap());
    let err = opt.step(&grads).unwrap_err();
    assert!(matches!(&err, Error::GradShape { name, .. } if name == "b"), "{err}");
    assert_eq!(a.to_vec::<f32>().unwrap(), vec![1.0, 2.0]);
}

#[test]
fn invalid_hyperparameters_are_reported_with_the_field() {
    let p = vec![("w".to_string(), param(&[1.0], &[1]))];
    let err = Adam::with_groups(vec![ParamGroup::new(p.clone())], AdamConfig { beta1: 1.0, ..Default::default() })
        .err()
        .unwrap();
    assert!(err.to_string().contains("beta1"), "{err}");
    let bad = SgdConfig { nesterov: true, ..Default::default() };
    assert!(bad.validate().unwrap_err().to_string().contains("nesterov"));
    // `new` cannot fail; a bad rate set later is caught by the step.
    let mut opt = Sgd::new(p.clone(), SgdConfig::default());
    opt.set_learning_rate(f64::NAN);
    let grads = grads_for(&[(&p[0].1, vec![1.0])]);
    assert!(opt.step(&grads).unwrap_err().to_string().contains("learning rate"));
}

#[test]
fn configs_read_from_json_with_pytorch_defaults_and_refuse_unknown_fields() {
    // As a run config embeds them: an internally tagged enum over the configs.
    #[derive(Debug, PartialEq, serde::Deserialize)]
    #[serde(tag = "type", rename_all = "lowercase")]
    enum Opt {
        Sgd(SgdConfig),
        AdamW(AdamWConfig),
    }
    let o: Opt = serde_json::from_str(r#"{"type": "adamw", "lr": 0.01, "amsgrad": true}"#).unwrap();
    assert_eq!(o, Opt::AdamW(AdamWConfig { lr: 0.01, amsgrad: true, ..Default::default() }));
    let o: Opt = serde_json::from_str(r#"{"type": "sgd"}"#).unwrap();
    assert_eq!(o, Opt::Sgd(SgdConfig::default()));
    assert!(serde_json::from_str::<Opt>(r#"{"type": "adamw", "betas": [0.9, 0.99]}"#).is_err());
}

// ---- state: save, restore, continue bit for bit -----------------------------------------------

fn make(kind: &str, params: Vec<(String, Tensor)>) -> Box<dyn Optimizer> {
    match kind {
        "sgd" => Box::new(Sgd::new(
            params,
            SgdConfig { lr: 0.05, momentum: 0.9, dampening: 0.0, nesterov: true, weight_decay: 1e-3 },
        )),
        "adam" => Box::new(Adam::new(params, AdamConfig { weight_decay: 1e-2, amsgrad: true, ..Default::default() })),
        "adamw" => Box::new(AdamW::new(params, AdamWConfig { amsgrad: true, ..Default::default() })),
        "rmsprop" => Box::new(RmsProp::new(
            params,
            RmsPropConfig { momentum: 0.5, centered: true, weight_decay: 1e-3, ..Default::default() },
        )),
        "adagrad" => Box::new(Adagrad::new(
            params,
            AdagradConfig { lr_decay: 0.01, initial_accumulator_value: 0.1, ..Default::default() },
        )),
        "lion" => Box::new(Lion::new(params, LionConfig { weight_decay: 0.1, ..Default::default() })),
        other => panic!("unknown optimizer {other}"),
    }
}

const KINDS: [&str; 6] = ["sgd", "adam", "adamw", "rmsprop", "adagrad", "lion"];

/// Three parameters; the third gets a gradient only on even steps.
fn model(rng: &mut Rng) -> Vec<(String, Tensor)> {
    [("0.weight", vec![2, 3]), ("0.bias", vec![3]), ("1.weight", vec![2, 2])]
        .into_iter()
        .map(|(n, s)| (n.to_string(), Tensor::randn(s.as_slice(), 0.0, 1.0, DType::F32, rng).requires_grad()))
        .collect()
}

fn random_grads(params: &[(String, Tensor)], step: u64, seed: u64) -> GradStore {
    let mut rng = Rng::seed(seed).fork(step);
    let mut store = GradStore::default();
    for (i, (_, p)) in params.iter().enumerate() {
        let g = Tensor::randn(p.shape(), 0.0, 1.0, DType::F32, &mut rng);
        if i < 2 || step.is_multiple_of(2) {
            store.insert(p, g);
        }
    }
    store
}

fn bits(params: &[(String, Tensor)]) -> Vec<Vec<u32>> {
    params.iter().map(|(_, p)| p.to_vec::<f32>().unwrap().iter().map(|x| x.to_bits()).collect()).collect()
}

#[test]
fn state_saved_after_k_steps_and_restored_into_a_fresh_optimizer_continues_bit_for_bit() {
    for kind in KINDS {
        let params = model(&mut Rng::seed(5));
        let mut opt = make(kind, params.clone());
        for t in 0..3 {
            opt.step(&random_grads(&params, t, 11)).unwrap();
        }
        // Through JSON, as a checkpoint would store it.
        let json = serde_json::to_string(&opt.state()).unwrap();
        let saved_weights: Vec<(String, Tensor)> =
            params.iter().map(|(n, p)| (n.clone(), p.deep_clone().unwrap().requires_grad())).collect();
        for t in 3..7 {
            opt.step(&random_grads(&params, t, 11)).unwrap();
        }

        let mut resumed = make(kind, saved_weights.clone());
        let state: OptimizerState = serde_json::from_str(&json).unwrap();
        resumed.load_state(&state).unwrap();
        assert_eq!(resumed.state(), state, "{kind}: the state round-trips");
        for t in 3..7 {
            resumed.step(&random_grads(&saved_weights, t, 11)).unwrap();
        }
        assert_eq!(bits(&params), bits(&saved_weights), "{kind}: resumed run differs");
        assert_eq!(opt.state(), resumed.state(), "{kind}: final states differ");
    }
}

#[test]
fn state_names_buffers_like_pytorch_and_load_refuses_a_mismatch() {
    let params = model(&mut Rng::seed(1));
    let mut adam = make("adam", params.clone());
    adam.step(&random_grads(&params, 0, 3)).unwrap();
    let state = adam.state();
    let names: Vec<&str> = state.params["0.weight"].buffers.keys().map(String::as_str).collect();
    assert_eq!(names, vec!["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]);
    assert_eq!(state.params["1.weight"].step, 1, "step 0 is even: all three had gradients");
    assert_eq!(
        state.groups,
        vec![GroupState {
            params: vec!["0.weight".into(), "0.bias".into(), "1.weight".into()],
            lr: 1e-3,
            lr_ratio: None,
            weight_decay: 1e-2,
        }]
    );

    let mut sgd = make("sgd", params.clone());
    assert!(sgd.load_state(&state).unwrap_err().to_string().contains("'adam'"));
    let mut other = Adam::new(params.clone(), AdamConfig { beta2: 0.99, amsgrad: true, ..Default::default() });
    assert!(other.load_state(&state).unwrap_err().to_string().contains("beta2"));
    let mut fewer = make("adam", params[..2].to_vec());
    assert!(fewer.load_state(&state).is_err());
    let mut broken = state.clone();
    broken.params.get_mut("0.bias").unwrap().buffers.get_mut("exp_avg").unwrap().pop();
    let mut fresh = make("adam", params.clone());
    let before = fresh.state();
    assert!(fresh.load_state(&broken).unwrap_err().to_string().contains("elements"));
    assert_eq!(fresh.state(), before, "a refused state changes nothing");
}

#[test]
fn sgd_momentum_buffer_is_absent_until_first_used() {
    let params = model(&mut Rng::seed(2));
    let mut sgd = make("sgd", params.clone());
    sgd.step(&random_grads(&params, 1, 4)).unwrap();
    let state = sgd.state();
    assert!(state.params["0.bias"].buffers.contains_key("momentum_buffer"));
    assert!(state.params["1.weight"].buffers.is_empty(), "odd step: no gradient yet");
}

// ---- gradient clipping ------------------------------------------------------------------------

fn clip_setup() -> (Vec<(String, Tensor)>, GradStore) {
    let a = param(&[0.0; 4], &[2, 2]);
    let b = param(&[0.0; 3], &[3]);
    let c = param(&[0.0; 2], &[2]);
    let grads = grads_for(&[(&a, vec![3.0, -4.0, 1.0, 2.0]), (&b, vec![-2.0, 0.5, 6.0])]);
    (vec![("a".into(), a), ("b".into(), b), ("c".into(), c)], grads)
}

fn grad(grads: &GradStore, params: &[(String, Tensor)], i: usize) -> Option<Vec<f32>> {
    grads.get(&params[i].1).map(|g| g.to_vec::<f32>().unwrap())
}

#[test]
fn clip_grad_norm_scales_all_gradients_together_and_returns_the_norm_before() {
    let (params, mut grads) = clip_setup();
    let all = [3.0f64, -4.0, 1.0, 2.0, -2.0, 0.5, 6.0];
    let norm = all.iter().map(|x| x * x).sum::<f64>().sqrt();
    let total = clip_grad_norm(&params, &mut grads, 2.0, 2.0).unwrap();
    assert!((total - norm).abs() < 1e-12, "{total} vs {norm}");
    let coef = 2.0 / (norm + 1e-6);
    let clipped: Vec<f32> =
        grad(&grads, &params, 0).unwrap().into_iter().chain(grad(&grads, &params, 1).unwrap()).collect();
    for (got, x) in clipped.iter().zip(all) {
        assert!((*got as f64 - x * coef).abs() < 1e-6, "{got} vs {}", x * coef);
    }
    assert!(grad(&grads, &params, 2).is_none(), "a missing gradient stays missing");
    let after = clip_grad_norm(&params, &mut grads, 2.0, 2.0).unwrap();
    assert!((after - 2.0).abs() < 1e-5, "the new norm is max_norm: {after}");
}

#[test]
fn clip_grad_norm_leaves_small_gradients_alone_and_supports_other_norms() {
    let (params, mut grads) = clip_setup();
    let before = grad(&grads, &params, 0);
    assert!((clip_grad_norm(&params, &mut grads, 100.0, 2.0).unwrap() - 70.25f64.sqrt()).abs() < 1e-12);
    assert_eq!(grad(&grads, &params, 0), before);
    assert_eq!(tensile_nn::optim::grad_norm(&params, &grads, f64::INFINITY).unwrap(), 6.0);
    assert_eq!(tensile_nn::optim::grad_norm(&params, &grads, 1.0).unwrap(), 18.5);
    let p3 = tensile_nn::optim::grad_norm(&params, &grads, 3.0).unwrap();
    let want = [3.0f64, 4.0, 1.0, 2.0, 2.0, 0.5, 6.0].iter().map(|x| x.powi(3)).sum::<f64>().cbrt();
    assert!((p3 - want).abs() < 1e-12);
    assert!(clip_grad_norm(&params, &mut grads, 1.0, 0.0).is_err());
}

#[test]
fn clip_grad_norm_reports_a_nan_or_infinite_norm_and_changes_nothing() {
    let (params, mut grads) = clip_setup();
    grads.insert(&params[1].1, Tensor::from_vec(vec![1.0f32, f32::NAN, 2.0], 3).unwrap());
    let before = grad(&grads, &params, 0);
    assert!(clip_grad_norm(&params, &mut grads, 1.0, 2.0).unwrap().is_nan());
    assert!(clip_grad_norm(&params, &mut grads, 1.0, f64::INFINITY).unwrap().is_nan());
    assert_eq!(grad(&grads, &params, 0), before);
    grads.insert(&params[1].1, Tensor::from_vec(vec![1.0f32, f32::INFINITY, 2.0], 3).unwrap());
    assert_eq!(clip_grad_norm(&params, &mut grads, 1.0, 2.0).unwrap(), f64::INFINITY);
    assert_eq!(grad(&grads, &params, 0), before);
}

#[test]
fn clip_grad_value_clamps_each_element_and_keeps_nan() {
    let (params, mut grads) = clip_setup();
    grads.insert(&params[1].1, Tensor::from_vec(vec![-2.0f32, f32::NAN, 0.1], 3).unwrap());
    clip_grad_value(&params, &mut grads, 1.5).unwrap();
    assert_eq!(grad(&grads, &params, 0).unwrap(), vec![1.5, -1.5, 1.0, 1.5]);
    let b = grad(&grads, &params, 1).unwrap();
    assert_eq!((b[0], b[2]), (-1.5, 0.1));
    assert!(b[1].is_nan());
    assert!(grad(&grads, &params, 2).is_none());
}

#[test]
fn grad_clip_config_reads_from_json_with_pytorch_default_norm_type() {
    let c: GradClip = serde_json::from_str(r#"{"norm": {"max_norm": 1.0}}"#).unwrap();
    assert_eq!(c, GradClip::Norm { max_norm: 1.0, norm_type: 2.0 });
    let (params, mut grads) = clip_setup();
    assert!((c.apply(&params, &mut grads).unwrap().unwrap() - 70.25f64.sqrt()).abs() < 1e-12);
    let v: GradClip = serde_json::from_str(r#"{"value": {"clip_value": 0.5}}"#).unwrap();
    assert_eq!(v.apply(&params, &mut grads).unwrap(), None);
}

// ---- parameter groups -------------------------------------------------------------------------

fn grouped_params() -> Vec<(String, Tensor)> {
    vec![
        ("0.weight".into(), param(&[1.0, -2.0, 3.0, 4.0], &[2, 2])),
        ("0.bias".into(), param(&[0.5, -0.5], &[2])),
        ("norm.weight".into(), param(&[1.0, 1.0], &[2])),
        ("emb.weight".into(), param(&[2.0, 2.0, -2.0, 2.0], &[2, 2])),
    ]
}

fn names(group: &ParamGroup) -> Vec<&str> {
    group.params.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn decay_split_puts_matrices_in_decay_and_biases_and_vectors_in_no_decay() {
    let groups = decay_split(grouped_params(), 0.1);
    assert_eq!(names(&groups[0]), vec!["0.weight", "emb.weight"]);
    assert_eq!(names(&groups[1]), vec!["0.bias", "norm.weight"]);
    assert_eq!((groups[0].weight_decay, groups[1].weight_decay), (Some(0.1), Some(0.0)));
    let (norms, rest) = split_by_patterns(grouped_params(), &["norm.*", "*.bias"]);
    assert_eq!(norms.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), vec!["0.bias", "norm.weight"]);
    assert_eq!(rest.len(), 2);
}

#[test]
fn adamw_with_decay_split_decays_only_the_decay_group() {
    let params = grouped_params();
    let before: Vec<Vec<f32>> = params.iter().map(|(_, p)| p.to_vec::<f32>().unwrap()).collect();
    let mut opt =
        AdamW::with_groups(decay_split(params.clone(), 0.1), AdamWConfig { lr: 0.5, ..Default::default() }).unwrap();
    // Zero gradients: Adam's own move is 0, so only the decoupled decay changes anything.
    let zero: Vec<(&Tensor, Vec<f32>)> = params.iter().map(|(_, p)| (p, vec![0.0; p.elem_count()])).collect();
    opt.step(&grads_for(&zero)).unwrap();
    let shrink = (1.0 - 0.5 * 0.1) as f32;
    for ((name, p), b) in params.iter().zip(&before) {
        let after = p.to_vec::<f32>().unwrap();
        let decays = name.ends_with("weight") && p.rank() == 2;
        let want: Vec<f32> = if decays { b.iter().map(|x| x * shrink).collect() } else { b.clone() };
        assert_eq!(after, want, "{name}");
    }
}

#[test]
fn sgd_groups_apply_their_own_l2_weight_decay() {
    let params = grouped_params();
    let groups = decay_split(params.clone(), 0.2);
    let mut opt = Sgd::with_groups(groups, SgdConfig { lr: 0.5, weight_decay: 0.9, ..Default::default() }).unwrap();
    let zero: Vec<(&Tensor, Vec<f32>)> = params.iter().map(|(_, p)| (p, vec![0.0; p.elem_count()])).collect();
    opt.step(&grads_for(&zero)).unwrap();
    assert_eq!(params[0].1.to_vec::<f32>().unwrap(), vec![0.9, -1.8, 2.7, 3.6]);
    assert_eq!(params[1].1.to_vec::<f32>().unwrap(), vec![0.5, -0.5]);
}

#[test]
fn group_learning_rates_follow_the_optimizer_rate_in_proportion() {
    let params = grouped_params();
    let (slow, fast) = params.split_at(2);
    let groups = vec![ParamGroup::new(slow.to_vec()).with_lr(0.01), ParamGroup::new(fast.to_vec())];
    let mut opt = Sgd::with_groups(groups, SgdConfig { lr: 0.1, ..Default::default() }).unwrap();
    assert_eq!(opt.group_learning_rates(), vec![0.01, 0.1]);
    opt.set_learning_rate(0.05);
    let lrs = opt.group_learning_rates();
    assert!((lrs[0] - 0.005).abs() < 1e-15 && lrs[1] == 0.05, "{lrs:?}");
    assert_eq!(opt.learning_rate(), 0.05);

    opt.set_group_learning_rate(0, 1.0).unwrap();
    assert_eq!(opt.group_learning_rates(), vec![1.0, 0.05]);
    assert!(opt.set_group_learning_rate(2, 1.0).is_err());
    let ones: Vec<(&Tensor, Vec<f32>)> = params.iter().map(|(_, p)| (p, vec![1.0; p.elem_count()])).collect();
    opt.step(&grads_for(&ones)).unwrap();
    assert_eq!(params[1].1.to_vec::<f32>().unwrap(), vec![-0.5, -1.5]);
    assert_eq!(params[2].1.to_vec::<f32>().unwrap(), vec![0.95, 0.95]);
}

#[test]
fn grouped_state_round_trips_and_a_parameter_in_two_groups_is_refused() {
    let params = grouped_params();
    let config = AdamWConfig { lr: 0.1, ..Default::default() };
    let groups = || vec![ParamGroup::new(params[..1].to_vec()).with_lr(0.5), ParamGroup::new(params[1..].to_vec())];
    let mut opt = AdamW::with_groups(groups(), config.clone()).unwrap();
    let ones: Vec<(&Tensor, Vec<f32>)> = params.iter().map(|(_, p)| (p, vec![1.0; p.elem_count()])).collect();
    opt.step(&grads_for(&ones)).unwrap();
    opt.set_learning_rate(0.2);
    let state = opt.state();
    let mut again = AdamW::with_groups(groups(), config.clone()).unwrap();
    again.load_state(&state).unwrap();
    assert_eq!(again.state(), state);
    assert_eq!(again.learning_rate(), 0.2);

    let mut single = AdamW::new(params.clone(), config.clone());
    assert!(single.load_state(&state).unwrap_err().to_string().contains("groups"));
    let twice = vec![ParamGroup::new(params[..2].to_vec()), ParamGroup::new(params[1..].to_vec())];
    let err = AdamW::with_groups(twice, config).err().unwrap();
    assert!(err.to_string().contains("0.bias"), "{err}");
}

#[test]
fn a_tied_parameter_listed_twice_is_updated_once() {
    let w = param(&[1.0], &[1]);
    let mut opt =
        Sgd::new(vec![("a".into(), w.clone()), ("b".into(), w.clone())], SgdConfig { lr: 0.5, ..Default::default() });
    opt.step(&grads_for(&[(&w, vec![1.0])])).unwrap();
    assert_eq!(w.to_vec::<f32>().unwrap(), vec![0.5]);
    assert_eq!(opt.state().params.len(), 1);
}
